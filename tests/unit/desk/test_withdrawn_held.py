"""A lowered keep's delay outlives a restart: the flag service saves it, and the keep it
read, in its datadir, and at start takes the longer of the settings' keep and any delay not
yet over (settings lowered while it was stopped are held from its start the same way); a
file it cannot read holds markers for good a keep from the start (fake clock and tables)."""

from __future__ import annotations

import json
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from broker.config import KafkaSettings
from broker.desk._flags_app import FlagServiceOptions, _Service
from broker.desk._withdrawn import KEEP, WithdrawnIds
from broker.desk._withdrawn_held import FILE, load_held
from broker.errors import ConfigError
from broker.keys import FileKeyStore
from broker.policy import load_bundle
from tests.unit.desk.test_flags_service import NHS, REPO, SECRET, FakeTable, FakeTopic, _record
from tests.unit.desk.test_withdrawn import EVERYONE, Clock, _partition, _withdraw

LONG = KEEP + timedelta(days=90)
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)


def _ids(clock: Clock, keep: timedelta | None, path: Path) -> WithdrawnIds:
    """A service's markers, started with the settings giving ``keep``."""
    return WithdrawnIds(EVERYONE, clock, keep, saved=path / FILE)


def _visit(ids: WithdrawnIds, table: dict[str, object], event_id: str) -> bool:
    """A notice for ``event_id`` on partition 0; whether e1's marker is still there."""
    ids.note(table, 0, [event_id], list(table.items()))
    return ids.holds(table, 0, "e1")


def test_a_restart_within_a_lowerings_delay_keeps_the_old_keep_until_it_ends(
    tmp_path: Path,
) -> None:
    """180 days lowered to 90 ten days after e1's marker, restarted five days later with
    the settings at 90: the 180 days still hold until 90 days after the change."""
    clock = Clock()
    ids = _ids(clock, LONG, tmp_path)
    table: dict[str, object] = {}  # the table's changelog outlives the restart too
    ids.note(table, 0, ["e1"], [])
    clock.wait(timedelta(days=10))
    ids.change(KEEP)
    clock.wait(timedelta(days=5))
    with capture_logs() as logs:
        restarted = _ids(clock, KEEP, tmp_path)
    assert restarted.keep() == LONG.total_seconds()
    [held] = logs
    assert held["event"] == "flags_withdrawn_keep_held"
    assert (held["keep_days"], held["in_force_days"]) == (90, 180)
    assert held["held_until"] == "2027-03-11T09:00:00+00:00"  # T0 + 10 + 90 days
    clock.wait(KEEP - timedelta(days=5))  # e1's marker is 100 days old: the delay's last second
    assert _visit(restarted, table, "e2")
    clock.wait(SECOND)
    assert not _visit(restarted, table, "e3")
    assert restarted.keep() == KEEP.total_seconds()


def test_settings_lowered_while_the_service_was_stopped_are_held_from_its_start(
    tmp_path: Path,
) -> None:
    clock = Clock()
    _ids(clock, LONG, tmp_path)  # last run at 180 days
    clock.wait(timedelta(days=30))
    restarted = _ids(clock, KEEP, tmp_path)  # the retention lowered meanwhile
    clock.wait(KEEP)
    assert restarted.keep() == LONG.total_seconds()
    clock.wait(SECOND)
    assert restarted.keep() == KEEP.total_seconds()


def test_a_delay_over_before_the_restart_is_dropped_and_a_longer_keep_applies_at_once(
    tmp_path: Path,
) -> None:
    clock = Clock()
    _ids(clock, LONG, tmp_path).change(KEEP)
    clock.wait(KEEP + SECOND)
    assert _ids(clock, KEEP, tmp_path).keep() == KEEP.total_seconds()
    assert load_held(tmp_path / FILE).held == ()  # type: ignore[union-attr]  # saved above
    _ids(clock, LONG, tmp_path).change(KEEP)
    longer = KEEP + timedelta(days=300)
    assert _ids(clock, longer, tmp_path).keep() == longer.total_seconds()


def test_a_delay_from_for_good_holds_for_good_across_a_restart(tmp_path: Path) -> None:
    clock = Clock()
    _ids(clock, None, tmp_path).change(KEEP)  # a topic given a finite retention
    clock.wait(timedelta(days=3))
    restarted = _ids(clock, KEEP, tmp_path)
    assert restarted.keep() is None
    clock.wait(KEEP - timedelta(days=3) + SECOND)
    assert restarted.keep() == KEEP.total_seconds()


def test_a_first_start_holds_nothing_and_saves_its_keep_privately(tmp_path: Path) -> None:
    clock = Clock()
    assert _ids(clock, KEEP, tmp_path).keep() == KEEP.total_seconds()
    path = tmp_path / FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"v": 1, "keep": KEEP.total_seconds(), "held": []}
    assert [p.name for p in tmp_path.iterdir()] == [FILE]  # no temporary file left behind


@pytest.mark.parametrize(
    "text", ["{not json", '{"v": 1}', '{"v": 1, "keep": -5, "held": []}',
             '{"v": 1, "keep": null, "held": [["soon", 1]]}', "[]",
             # well formed, but no time a datetime holds: a traceback at start, before
             '{"v": 1, "keep": 17280000, "held": [[1e20, 25920000]]}',
             '{"v": 1, "keep": 17280000, "held": [[Infinity, 25920000]]}',
             '{"v": 1, "keep": NaN, "held": []}'],
)  # fmt: skip
def test_a_file_it_cannot_read_holds_markers_for_good_a_keep_from_the_start(
    text: str, tmp_path: Path
) -> None:
    """What it held is unknown: the longest it could have held, with a warning."""
    (tmp_path / FILE).write_text(text)
    clock = Clock()
    with capture_logs() as logs:
        ids = _ids(clock, KEEP, tmp_path)
    assert ids.keep() is None
    assert "flags_withdrawn_keep_file_unreadable" in [e["event"] for e in logs]
    clock.wait(KEEP + SECOND)
    assert ids.keep() == KEEP.total_seconds()
    assert _ids(clock, KEEP, tmp_path).keep() == KEEP.total_seconds()  # rewritten, readable


def test_a_datadir_it_cannot_write_stops_the_start_in_one_line(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    with pytest.raises(ConfigError, match="the flag service cannot write ") as exc:
        _ids(Clock(), KEEP, not_a_dir)
    assert "\n" not in str(exc.value)


def _service(tmp_path: Path, clock: Clock, keep: timedelta, table: FakeTable) -> _Service:
    policy = load_bundle(REPO / "policies")
    opts = FlagServiceOptions(
        party="sandwell-coord", kafka=KafkaSettings(),
        keystore=FileKeyStore(tmp_path / "keys", create=True),
        rules=policy.flag_rules, linkage_secret=SECRET, datadir=tmp_path, partitions=3,
        withdrawn_keep=keep,
    )  # fmt: skip
    topics = (FakeTopic(table.log), FakeTopic(table.log, "-household"), FakeTopic(table.log))
    service = _Service(opts, topics, (table, FakeTable(table.log, "-household")), clock=clock)
    service.published = set()
    return service


async def test_the_service_restarted_within_the_delay_still_passes_over_a_withdrawn_record(
    tmp_path: Path,
) -> None:
    """The service's own datadir: started at 180 days, lowered to 90 while running,
    restarted; a withdrawn record read 95 days after its notice is still passed over."""
    clock = Clock()
    log: list[tuple[str, object]] = []
    windows = FakeTable(log)
    service = _service(tmp_path, clock, LONG, windows)
    p = _partition(NHS[0])
    await service.on_child_record(_withdraw("e1"), p)
    clock.wait(timedelta(days=10))
    service.withdrawn.change(KEEP)
    clock.wait(timedelta(days=85))
    restarted = _service(tmp_path, clock, KEEP, windows)
    await restarted.on_child_record(_withdraw("e2"), p)  # visits, and would drop, e1's marker
    log.clear()
    await restarted.on_child_record(_record("e1", NHS[0]), p)  # need level 4: would flag
    assert log == []
