"""How long withdrawn-id markers are kept, from the topics' settings as the cluster has them:
never less than 90 days, longer when a topic keeps records longer, for good when one keeps
them for good or its settings cannot be read (fake settings; tests/integration/desk reads
real ones)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from broker.config import KafkaSettings
from broker.desk._flags_app import FlagServiceOptions, _Service
from broker.desk._withdrawn import KEEP, REACH, WithdrawnIds
from broker.desk._withdrawn_keep import GRACE, keep_for
from broker.keys import FileKeyStore
from broker.policy import load_bundle
from tests.unit.desk.test_flags_service import (
    NHS,
    REPO,
    SECRET,
    FakeTable,
    FakeTopic,
    _record,
)
from tests.unit.desk.test_withdrawn import EVERYONE, Clock, _partition, _withdraw

DAY_MS = 24 * 3600 * 1000
DELIVER, BYCHILD, BYHOUSEHOLD = "accord.deliver.t", "t-bychild", "t-byhousehold"


def _topics(
    deliver_days: float = 30, segment_days: float = 7, **changed: dict[str, str] | None
) -> dict[str, dict[str, str] | None]:
    """The three topics' settings as provisioning makes them (and the broker's default
    segment life), with ``deliver_days`` and ``segment_days`` for the delivery topic."""

    def settings(days: float, segment: float = 7) -> dict[str, str]:
        return {"retention.ms": str(int(days * DAY_MS)), "segment.ms": str(int(segment * DAY_MS)),
                "cleanup.policy": "delete"}  # fmt: skip

    topics: dict[str, dict[str, str] | None] = {
        DELIVER: settings(deliver_days, segment_days),
        BYCHILD: settings(7),
        BYHOUSEHOLD: settings(7),
    }
    return {**topics, **{k.replace("_", "-"): v for k, v in changed.items()}}


def test_provisionings_settings_give_the_reach_the_argument_sums_and_keep_90_days() -> None:
    found = keep_for(_topics())
    assert found.reach == REACH  # (30 + 7 + 5 min) + 2 * (7 + 7 + 5 min)
    assert found.keep == KEEP == timedelta(days=90)
    assert timedelta(days=24, hours=23, minutes=45) == GRACE


def test_a_raised_delivery_retention_keeps_markers_as_much_longer() -> None:
    """120 days to ride out a desk's outage: 90 more days on the topic, 90 more kept."""
    found = keep_for(_topics(deliver_days=120))
    assert found.reach == REACH + timedelta(days=90)
    assert found.keep == KEEP + timedelta(days=90)
    assert found.keep - found.reach == GRACE


def test_a_longer_segment_life_from_the_brokers_log_roll_keeps_markers_longer() -> None:
    found = keep_for(_topics(segment_days=30))
    assert found.keep == KEEP + timedelta(days=23)


def test_settings_shorter_than_provisionings_never_keep_markers_less_than_90_days() -> None:
    found = keep_for(_topics(deliver_days=1, segment_days=1))
    assert found.reach is not None
    assert found.reach < REACH
    assert found.keep == KEEP


@pytest.mark.parametrize(
    ("settings", "why"),
    [
        ({"retention.ms": "-1", "segment.ms": "604800000", "cleanup.policy": "delete"},
         "retention.ms=-1"),
        ({"retention.ms": str(7 * DAY_MS), "segment.ms": "604800000", "cleanup.policy": "compact"},
         "cleanup.policy=compact"),
        ({"cleanup.policy": "delete"}, "no retention.ms or segment.ms"),
        (None, "could not be read"),
        ({"retention.ms": str(2**63 - 1), "segment.ms": "604800000", "cleanup.policy": "delete"},
         "retention.ms=9223372036854775807"),  # Long.MAX_VALUE: "for good" to some tools
        ({"retention.ms": str(7 * DAY_MS), "segment.ms": str(2**63 - 1),
          "cleanup.policy": "delete"}, "segment.ms=9223372036854775807"),
    ],
)  # fmt: skip
def test_a_topic_that_may_keep_a_record_for_good_keeps_markers_for_good(
    settings: dict[str, str] | None, why: str
) -> None:
    found = keep_for(_topics(t_bychild=settings))
    assert found.keep is None
    assert found.reason is not None
    assert found.reason.startswith(f"{BYCHILD}: ")
    assert why in found.reason


def test_compaction_beside_deletion_still_deletes_by_retention() -> None:
    topics = _topics()
    assert topics[DELIVER] is not None
    topics[DELIVER] = {**topics[DELIVER], "cleanup.policy": "compact,delete"}
    assert keep_for(topics).keep == KEEP


def test_a_longer_keep_keeps_a_marker_past_90_days_and_drops_it_after_the_keep() -> None:
    clock = Clock()
    keep = KEEP + timedelta(days=90)
    ids = WithdrawnIds(EVERYONE, clock, keep)
    table: dict[str, object] = {}
    p = 0
    ids.note(table, p, ["e1"], [])
    marker = ids.key(p, "e1")
    clock.wait(KEEP + timedelta(days=1))
    ids.note(table, p, ["e2"], list(table.items()))
    assert marker in table
    assert ids.holds(table, p, "e1")
    clock.wait(keep - KEEP)
    ids.note(table, p, ["e3"], list(table.items()))
    assert marker not in table


def test_kept_for_good_a_marker_is_never_dropped() -> None:
    clock = Clock()
    ids = WithdrawnIds(EVERYONE, clock, None)
    table: dict[str, object] = {}
    ids.note(table, 1, ["e1"], [])
    clock.wait(timedelta(days=10 * 365))
    ids.note(table, 1, ["e2"], list(table.items()))
    assert ids.holds(table, 1, "e1")


def test_a_keep_shorter_than_90_days_is_taken_as_90() -> None:
    clock = Clock()
    ids = WithdrawnIds(EVERYONE, clock, timedelta(days=1))
    table: dict[str, object] = {}
    ids.note(table, 2, ["e1"], [])
    clock.wait(KEEP - timedelta(seconds=1))
    ids.note(table, 2, ["e2"], list(table.items()))
    assert ids.holds(table, 2, "e1")


async def test_the_services_keep_comes_from_its_options(tmp_path: Path) -> None:
    """With a delivery topic kept 120 days, a withdrawn record read 100 days after its
    notice (a group reset to the earliest offset) is still passed over."""
    clock = Clock()
    policy = load_bundle(REPO / "policies")
    opts = FlagServiceOptions(
        party="sandwell-coord", kafka=KafkaSettings(),
        keystore=FileKeyStore(tmp_path / "keys", create=True),
        rules=policy.flag_rules, linkage_secret=SECRET, datadir=tmp_path, partitions=3,
        withdrawn_keep=keep_for(_topics(deliver_days=120)).keep,
    )  # fmt: skip
    log: list[tuple[str, object]] = []
    topics = (FakeTopic(log), FakeTopic(log, "-household"), FakeTopic(log))
    service = _Service(opts, topics, (FakeTable(log), FakeTable(log, "-household")), clock=clock)
    service.published = set()
    p = _partition(NHS[0])
    await service.on_child_record(_withdraw("e1"), p)
    clock.wait(timedelta(days=100))
    await service.on_child_record(_withdraw("e2"), p)  # visits, and would drop, e1's marker
    log.clear()
    await service.on_child_record(_record("e1", NHS[0]), p)  # need level 4: would flag
    assert log == []
