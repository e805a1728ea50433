"""How long withdrawn-id markers are kept, from the topics' settings as the cluster has them:
never less than 90 days, longer when a topic keeps records longer, for good when one keeps
them for good or its settings cannot be read (fake settings; tests/integration/desk reads
real ones). Read again while the service runs: a longer keep applies at once, a shorter one
only once it has passed since the change, and a failed reading changes nothing."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from broker.config import KafkaSettings
from broker.desk import _flags_app
from broker.desk._flags_app import FlagServiceOptions, _Service
from broker.desk._withdrawn import KEEP, REACH, WithdrawnIds
from broker.desk._withdrawn_keep import (
    GRACE,
    RECHECK,
    UNREAD_FOR_GOOD,
    Keep,
    KeepWatch,
    keep_for,
)
from broker.errors import TransportError
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


# -- read again while the service runs ------------------------------------------------------

LONG = KEEP + timedelta(days=90)


def _marked(keep: timedelta | None = KEEP) -> tuple[Clock, WithdrawnIds, dict[str, object]]:
    """Markers kept for ``keep``, with one for e1 written now."""
    clock = Clock()
    ids = WithdrawnIds(EVERYONE, clock, keep)
    table: dict[str, object] = {}
    ids.note(table, 0, ["e1"], [])
    return clock, ids, table


def _visit(ids: WithdrawnIds, table: dict[str, object], event_id: str) -> bool:
    """A notice for ``event_id`` on partition 0; whether e1's marker is still there."""
    ids.note(table, 0, [event_id], list(table.items()))
    return ids.holds(table, 0, "e1")


def test_a_longer_keep_read_while_running_applies_at_once_to_every_marker() -> None:
    clock, ids, table = _marked()
    clock.wait(KEEP - timedelta(days=1))
    ids.change(LONG)  # a delivery topic raised to 120 days
    clock.wait(timedelta(days=2))
    assert _visit(ids, table, "e2")
    clock.wait(LONG - KEEP)
    assert not _visit(ids, table, "e3")


def test_a_shorter_keep_takes_effect_only_once_it_has_passed_since_the_change() -> None:
    """180 days lowered to 90, 10 days after e1's marker: a record written before the
    change may still be on a topic under the old settings, until the new keep has passed."""
    clock, ids, table = _marked(LONG)
    clock.wait(timedelta(days=10))
    ids.change(KEEP)
    assert ids.keep() == LONG.total_seconds()
    clock.wait(timedelta(days=1))
    assert _visit(ids, table, "e2")  # e2's marker: written after the change
    clock.wait(KEEP - timedelta(days=1))  # 100 days old: the old keep still holds
    assert _visit(ids, table, "e3")
    clock.wait(timedelta(seconds=1))
    assert not _visit(ids, table, "e4")  # the new keep has passed since the change
    assert ids.keep() == KEEP.total_seconds()
    assert ids.holds(table, 0, "e2")  # 89 days old: kept, under the new keep
    clock.wait(timedelta(days=1))
    ids.note(table, 0, ["e5"], list(table.items()))
    assert not ids.holds(table, 0, "e2")


def test_for_good_made_finite_while_running_drops_markers_only_a_new_keep_later() -> None:
    clock, ids, table = _marked(None)
    clock.wait(timedelta(days=400))
    ids.change(KEEP)  # the topic given a finite retention
    assert ids.keep() is None
    clock.wait(KEEP)
    assert _visit(ids, table, "e2")
    clock.wait(timedelta(seconds=1))
    assert not _visit(ids, table, "e3")


def test_a_keep_raised_again_within_a_lowerings_hold_is_the_longest_in_force() -> None:
    clock, ids, _ = _marked(LONG)
    ids.change(KEEP)
    ids.change(KEEP + timedelta(days=10))
    assert ids.keep() == LONG.total_seconds()
    clock.wait(KEEP + timedelta(days=1))  # the first lowering's hold has passed
    assert ids.keep() == (KEEP + timedelta(days=10)).total_seconds()


class _Readings:
    """The settings' readings, in turn: a Keep, or an exception to raise."""

    def __init__(self, *found: Keep | Exception) -> None:
        self.found = list(found)
        self.changes: list[timedelta | None] = []

    async def read(self) -> Keep:
        found = self.found.pop(0)
        if isinstance(found, Exception):
            raise found
        return found

    def change(self, keep: timedelta | None) -> None:
        self.changes.append(keep)


async def test_the_watch_gives_on_only_a_keep_that_differs() -> None:
    readings = _Readings(Keep(KEEP), Keep(LONG), Keep(LONG), Keep(None, reason="t: -1"),
                         Keep(KEEP))  # fmt: skip
    watch = KeepWatch(readings.read, readings.change, KEEP)
    with capture_logs() as logs:
        for _ in range(5):
            await watch.check()
    assert readings.changes == [LONG, None, KEEP]
    events = [e["event"] for e in logs]
    assert "flags_withdrawn_kept_longer" in events
    assert "flags_withdrawn_kept_for_good" in events


@pytest.mark.parametrize(
    "failure",
    [TransportError("reading the settings of accord.deliver.t: timed out"),
     Keep(None, reason="t: its settings could not be read", read=False)],
)  # fmt: skip
@pytest.mark.parametrize("current", [LONG, None])
async def test_a_failed_reading_keeps_the_keep_as_it_was_and_warns(
    failure: Keep | Exception, current: timedelta | None
) -> None:
    """Kept as read before (for good if never read: as at start), with a warning that names
    the failure's kind only."""
    readings = _Readings(failure, Keep(current))
    watch = KeepWatch(readings.read, readings.change, current)
    with capture_logs() as logs:
        await watch.check()
        await watch.check()
    assert readings.changes == []
    assert watch.current == current
    [warning] = [e for e in logs if e["event"] == "flags_withdrawn_keep_unread"]
    assert warning["log_level"] == "warning"
    assert warning["error"] in {"TransportError", "settings-unreadable"}
    # Kept for good already (never read): the warning does not promise it for later.
    assert ("for good once" in warning["hint"]) is (current is not None)


async def test_the_watch_reads_every_interval_while_the_service_runs() -> None:
    readings = _Readings(Keep(LONG), Keep(KEEP), Keep(KEEP))
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        if len(slept) == 3:
            raise asyncio.CancelledError  # the app stopping
        slept.append(seconds)

    watch = KeepWatch(readings.read, readings.change, KEEP, every=RECHECK, sleep=sleep)
    with pytest.raises(asyncio.CancelledError):
        await watch.run()
    assert slept == [600.0] * 3
    assert readings.changes == [LONG, KEEP]


async def test_the_service_takes_a_keep_read_while_it_runs(tmp_path: Path) -> None:
    """Started at 90 days; the delivery topic raised to 120 days while it runs: a withdrawn
    record read 100 days after its notice is still passed over."""
    clock = Clock()
    service, log = _flag_service(tmp_path, clock)
    readings = _Readings(keep_for(_topics(deliver_days=120)))
    await KeepWatch(readings.read, service.withdrawn.change, KEEP).check()
    p = _partition(NHS[0])
    await service.on_child_record(_withdraw("e1"), p)
    clock.wait(timedelta(days=100))
    await service.on_child_record(_withdraw("e2"), p)
    log.clear()
    await service.on_child_record(_record("e1", NHS[0]), p)  # need level 4: would flag
    assert log == []


# -- readings failing while the service runs -------------------------------------------------


async def test_readings_failing_for_a_day_make_the_keep_for_good_as_at_start() -> None:
    """Up to then the keep stays as last read; a reading that succeeds after gives its keep,
    which WithdrawnIds holds as a lowering from for good."""
    clock = Clock()
    failure = TransportError("reading the settings of accord.deliver.t: timed out")
    unreadable = Keep(None, reason="t: its settings could not be read", read=False)
    readings = _Readings(failure, unreadable, failure, failure, Keep(KEEP))
    watch = KeepWatch(readings.read, readings.change, KEEP, clock=clock)
    with capture_logs() as logs:
        await watch.check()
        clock.wait(UNREAD_FOR_GOOD / 2)
        await watch.check()
        clock.wait(UNREAD_FOR_GOOD / 2 - timedelta(seconds=1))
        await watch.check()
        assert readings.changes == []  # a second short of a day: kept as last read
        assert watch.current == KEEP
        clock.wait(timedelta(seconds=1))
        await watch.check()
        assert readings.changes == [None]
        assert watch.current is None
        await watch.check()
    assert readings.changes == [None, KEEP]
    [for_good] = [e for e in logs if e["event"] == "flags_withdrawn_kept_for_good"]
    assert for_good["log_level"] == "warning"
    assert "could not be read for a day" in for_good["reason"]
    unread = [e for e in logs if e["event"] == "flags_withdrawn_keep_unread"]
    assert len(unread) == 2  # at the first failure, and a day after: not at every reading
    assert "for good once" in unread[0]["hint"]
    [again] = [e for e in logs if e["event"] == "flags_withdrawn_keep_read_again"]
    assert again["failed_hours"] == 24


async def test_a_reading_that_succeeds_starts_a_days_failures_afresh() -> None:
    clock = Clock()
    failure = TransportError("timed out")
    readings = _Readings(failure, Keep(KEEP), failure, failure)
    watch = KeepWatch(readings.read, readings.change, KEEP, clock=clock)
    await watch.check()
    clock.wait(UNREAD_FOR_GOOD - timedelta(hours=1))
    await watch.check()  # succeeds
    clock.wait(timedelta(hours=2))
    await watch.check()
    clock.wait(UNREAD_FOR_GOOD - timedelta(hours=1))
    await watch.check()  # 23 hours after the first failure since the success
    assert readings.changes == []


async def test_after_a_days_failures_the_service_keeps_markers_for_good_then_a_keep_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unread for a day while running, then read again at 90 days: markers are kept for
    good until 90 days have passed since that reading (the keep held as any lowering)."""
    clock = Clock()
    service, _ = _flag_service(tmp_path, clock)
    p = _partition(NHS[0])
    await service.on_child_record(_withdraw("e1"), p)
    readings = _Readings(TransportError("timed out"), TransportError("timed out"), Keep(KEEP))
    # The watch the app runs, its Kafka stood aside.
    monkeypatch.setattr(_flags_app, "read_keep", lambda *_: readings.read())
    await service.watch.check()
    clock.wait(UNREAD_FOR_GOOD)
    await service.watch.check()
    assert service.withdrawn.keep() is None
    clock.wait(timedelta(days=60))
    await service.watch.check()  # read again: 90 days, from now
    clock.wait(KEEP - timedelta(seconds=1))  # e1's marker is 151 days old
    await service.on_child_record(_withdraw("e2"), p)
    log: list[tuple[str, object]] = service.out.log
    log.clear()
    await service.on_child_record(_record("e1", NHS[0]), p)  # need level 4: would flag
    assert log == []
    clock.wait(timedelta(seconds=2))
    await service.on_child_record(_withdraw("e3"), p)
    assert not service.withdrawn.holds(service.windows, p, "e1")


# -- what the log says of a lowering -------------------------------------------------------


def test_a_lowering_logs_the_keep_in_force_and_when_it_falls_and_again_when_it_does() -> None:
    clock, ids, _ = _marked(LONG)
    clock.wait(timedelta(days=10))
    with capture_logs() as logs:
        ids.change(KEEP)
    [changed] = logs
    assert changed["event"] == "flags_withdrawn_keep_changed"
    assert changed["keep_days"] == 90
    assert changed["was_days"] == 180
    assert changed["in_force_days"] == 180  # the old keep holds ...
    assert changed["held_until"] == "2027-03-11T09:00:00+00:00"  # ... 90 days from the change
    with capture_logs() as logs:
        clock.wait(KEEP)
        ids.keep()
        assert logs == []  # the last second of the delay
        clock.wait(timedelta(seconds=1))
        ids.keep()
        ids.keep()
    [ended] = logs
    assert ended["event"] == "flags_withdrawn_keep_held_ended"
    assert ended["in_force_days"] == 90
    assert ended["was_days"] == 180
    assert ended["held_until"] == "2027-03-11T09:00:00+00:00"


def test_a_longer_keep_logs_it_in_force_at_once() -> None:
    _, ids, _ = _marked(KEEP)
    with capture_logs() as logs:
        ids.change(LONG)
    [changed] = logs
    assert (changed["keep_days"], changed["was_days"], changed["in_force_days"]) == (180, 90, 180)
    assert "held_until" not in changed


# -- the watch in the running service ----------------------------------------------------------


def _flag_service(tmp_path: Path, clock: Clock) -> tuple[_Service, list[tuple[str, object]]]:
    """A flag service on fake topics and tables, and the log of what they are written."""
    policy = load_bundle(REPO / "policies")
    opts = FlagServiceOptions(
        party="sandwell-coord", kafka=KafkaSettings(),
        keystore=FileKeyStore(tmp_path / "keys", create=True),
        rules=policy.flag_rules, linkage_secret=SECRET, datadir=tmp_path, partitions=3,
    )  # fmt: skip
    log: list[tuple[str, object]] = []
    topics = (FakeTopic(log), FakeTopic(log, "-household"), FakeTopic(log))
    service = _Service(opts, topics, (FakeTable(log), FakeTable(log, "-household")), clock=clock)
    service.published = set()
    return service, log


async def test_the_app_runs_the_services_watch_at_the_set_interval_into_its_markers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """build_flags_app's app (made without Kafka) has the watch as a task, reading every
    ACCORD_DESK__FLAGS_RECHECK_MINUTES, and a keep it reads is the service's markers' keep."""
    from broker.config import KafkaSecurity

    policy = load_bundle(REPO / "policies")
    opts = FlagServiceOptions(
        party="sandwell-coord", kafka=KafkaSettings(security_protocol=KafkaSecurity.PLAINTEXT),
        keystore=FileKeyStore(tmp_path / "keys", create=True),
        rules=policy.flag_rules, linkage_secret=SECRET, datadir=tmp_path, partitions=3,
        withdrawn_recheck=timedelta(minutes=3),
    )  # fmt: skip
    app, service = _flags_app._build(opts)
    tasks = [getattr(task, "__wrapped__", task) for task in app._app_tasks]
    assert service.watch.run in tasks
    assert service.watch.every == timedelta(minutes=3)
    read: list[tuple[object, str]] = []

    async def read_keep(kafka: KafkaSettings, party: str) -> Keep:
        read.append((kafka, party))
        return keep_for(_topics(deliver_days=120))

    monkeypatch.setattr(_flags_app, "read_keep", read_keep)
    await service.watch.check()
    assert read == [(opts.kafka, "sandwell-coord")]
    assert service.withdrawn.keep() == LONG.total_seconds()
