"""The flag service's withdrawn-id markers (faust's tables replaced by fakes): each is kept
for as long as its record could still arrive, then dropped at its partition's next notice;
earlier versions' markers and lists are dated when first seen, never dropped at once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from broker.config import KafkaSettings
from broker.desk import child_key, household_key
from broker.desk._withdrawn import KEEP, REACH, RETENTION, SEGMENT
from broker.kafka import partition_for
from broker.policy import load_bundle
from broker.provision import desired_access
from broker.topics import deliver, desk_flags_internal
from tests.unit.desk.test_flags_service import HOME, NHS, REPO, SECRET, _record, _service

EVERYONE = [0, 1, 2]
T0 = datetime(2026, 12, 1, 9, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def wait(self, span: timedelta) -> None:
        self.now += span.total_seconds()


def _withdraw(*event_ids: str) -> bytes:
    return json.dumps({"withdraw": list(event_ids)}).encode()


def _partition(nhs: str) -> int:
    child = child_key(SECRET, {"nhs_number": nhs})
    assert child is not None
    return partition_for(child.encode(), EVERYONE)


def _household_record(event_id: str) -> bytes:
    child = child_key(SECRET, {"nhs_number": NHS[0]})
    rules = {"household-domestic-abuse": {"aggregates": {}, "window": []}}
    body = {"household": household_key(SECRET, HOME), "child": child, "residents": [child],
            "record": [0, event_id, "wmp", "t", 2, []], "rules": rules}  # fmt: skip
    return json.dumps(body).encode()


async def test_a_marker_older_than_the_horizon_is_dropped_at_its_partitions_next_notice(
    tmp_path: Path,
) -> None:
    clock = Clock()
    service, log = _service(tmp_path, clock=clock)
    p = _partition(NHS[0])
    q = partition_for(household_key(SECRET, HOME).encode(), EVERYONE)
    await service.on_child_record(_withdraw("e1"), p)
    await service.on_household_record(_withdraw("e1"), q)
    mine, theirs = service.withdrawn.key(p, "e1"), service.withdrawn.key(q, "e1")
    assert service.windows[mine] == service.households[theirs] == int(T0)
    clock.wait(KEEP + timedelta(seconds=1))
    log.clear()
    await service.on_child_record(_withdraw("e2"), p)
    await service.on_household_record(_withdraw("e2"), q)
    # A deletion: a tombstone on the changelog, so a restart does not restore it.
    assert ("deleted", mine) in log
    assert ("deleted-household", theirs) in log
    assert mine not in service.windows
    assert theirs not in service.households
    assert service.windows[service.withdrawn.key(p, "e2")] == int(clock.now)


async def test_a_marker_younger_than_the_horizon_is_kept_and_its_record_never_counts(
    tmp_path: Path,
) -> None:
    """The latest a withdrawn record can arrive (REACH after its notice), with notices that
    visit the partition's markers in between: it is still passed over."""
    clock = Clock()
    service, log = _service(tmp_path, clock=clock)
    p = _partition(NHS[0])
    q = partition_for(household_key(SECRET, HOME).encode(), EVERYONE)
    await service.on_child_record(_withdraw("e1"), p)
    await service.on_household_record(_withdraw("e1"), q)
    clock.wait(REACH)
    await service.on_child_record(_withdraw("e2"), p)
    await service.on_household_record(_withdraw("e2"), q)
    log.clear()
    await service.on_child_record(_record("e1", NHS[0]), p)  # need level 4: would flag
    await service.on_household_record(_household_record("e1"), q)
    assert log == []
    clock.wait(KEEP - REACH - timedelta(seconds=1))  # the marker's last second
    await service.on_child_record(_withdraw("e3"), p)
    assert service.windows[service.withdrawn.key(p, "e1")] == int(T0)
    log.clear()
    await service.on_child_record(_record("e1", NHS[0]), p)
    assert log == []
    await service.on_child_record(_record("e4", NHS[0]), p)  # not withdrawn: counts
    assert [step for step, _ in log] == ["send", "acked", "state"]


async def test_a_notice_drops_only_its_own_partitions_markers(tmp_path: Path) -> None:
    """A table deletion goes to the changelog partition of the message being processed."""
    clock = Clock()
    service, log = _service(tmp_path, clock=clock)
    for p in EVERYONE:
        await service.on_child_record(_withdraw("e1", "e2"), p)
    clock.wait(KEEP + timedelta(days=1))
    for p in EVERYONE:
        log.clear()
        await service.on_child_record(_withdraw("e3"), p)
        deleted = {key for step, key in log if step == "deleted"}
        assert deleted == {service.withdrawn.key(p, e) for e in ("e1", "e2")}
        assert all(partition_for(k.encode(), EVERYONE) == p for k in deleted)
    assert len(service.windows) == len(EVERYONE)  # e3's markers only


async def test_an_earlier_versions_marker_is_dated_when_first_seen_and_dropped_a_horizon_later(
    tmp_path: Path,
) -> None:
    """``True``, from before markers kept a time: never dropped at once, however old."""
    clock = Clock()
    service, log = _service(tmp_path, clock=clock)
    p = _partition(NHS[0])
    old = service.withdrawn.key(p, "e7")
    service.windows[old] = True  # the old layout, by hand
    clock.wait(timedelta(days=1000))
    await service.on_child_record(_withdraw("e8"), p)
    assert service.windows[old] == int(clock.now)
    log.clear()
    await service.on_child_record(_record("e7", NHS[0]), p)
    assert log == []
    clock.wait(KEEP - timedelta(seconds=1))
    await service.on_child_record(_withdraw("e9"), p)
    assert old in service.windows
    clock.wait(timedelta(seconds=2))
    await service.on_child_record(_withdraw("e10"), p)
    assert old not in service.windows


async def test_an_earlier_versions_list_becomes_markers_of_first_sight_and_goes(
    tmp_path: Path,
) -> None:
    """The one list per partition written before 2026-12-05 counts until the partition's
    next notice, which turns its ids into markers and deletes it."""
    clock = Clock()
    service, log = _service(tmp_path, clock=clock)
    p = _partition(NHS[0])
    listed = service.withdrawn.list_key(p)
    service.windows[listed] = ["e7", "e8"]  # the old layout, by hand
    log.clear()
    await service.on_child_record(_record("e7", NHS[0]), p)
    assert log == []
    await service.on_child_record(_withdraw("e9"), p)
    assert ("deleted", listed) in log
    assert listed not in service.windows
    for e in ("e7", "e8", "e9"):
        assert service.windows[service.withdrawn.key(p, e)] == int(clock.now)
    log.clear()
    await service.on_child_record(_record("e8", NHS[0]), p)
    assert log == []
    clock.wait(KEEP + timedelta(seconds=1))
    await service.on_child_record(_withdraw("e10"), p)
    assert [k for k in service.windows if k.startswith("~")] == [service.withdrawn.key(p, "e10")]


def test_the_horizon_outlasts_every_topic_a_withdrawn_record_can_come_through() -> None:
    """The argument in broker/desk/_withdrawn.py rests on the retention provisioning gives
    the delivery topic and the two re-keyed topics, and on their segments' default life."""
    policy = load_bundle(REPO / "policies")
    specs = {s.name: s for s in desired_access(policy, KafkaSettings(), logins=False).topics}
    team = "sandwell-coord"
    _, bychild, _, byhousehold = desk_flags_internal(team)
    through: dict[str, Any] = {
        "deliver": specs[deliver(team)],
        "flags-bychild": specs[bychild],
        "flags-byhousehold": specs[byhousehold],
    }
    assert set(through) == set(RETENTION)
    for name, spec in through.items():
        assert timedelta(milliseconds=int(spec.config["retention.ms"])) <= RETENTION[name]
        assert "segment.ms" not in spec.config  # the broker's default, 7 days
        assert spec.config.get("cleanup.policy", "delete") == "delete"
    assert sum((r + SEGMENT for r in RETENTION.values()), timedelta(0)) == REACH
    grace = KEEP - REACH
    assert grace >= timedelta(days=24)  # as the docs promise
