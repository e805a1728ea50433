"""The ids a child's or household's state keeps as gone: each dated when it goes and
forgotten once older than the withdrawn-id markers' keep, so a state no longer grows for its
life; format-1 states' plain ids are dated when the state is first written again, never
forgotten at once (faust's tables replaced by fakes, the clock by a fake)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from broker.desk import FlagEngine, child_key, household_key
from broker.desk import _flagging as flagging
from broker.desk._gone import Forget, forget
from broker.desk._withdrawn import KEEP
from broker.kafka import partition_for
from broker.policy import load_bundle
from tests.unit.desk.test_flags_service import HOME, NHS, REPO, SECRET, _record, _service
from tests.unit.desk.test_withdrawn import EVERYONE, T0, Clock, _household_record, _withdraw

CHILD = child_key(SECRET, {"nhs_number": NHS[0]}) or ""
HOUSEHOLD = household_key(SECRET, HOME) or ""
P = partition_for(CHILD.encode(), EVERYONE)
Q = partition_for(HOUSEHOLD.encode(), EVERYONE)
SECOND = timedelta(seconds=1)


async def test_a_withdrawn_records_id_is_dated_and_forgotten_once_older_than_the_keep(
    tmp_path: Path,
) -> None:
    clock = Clock()
    service, _ = _service(tmp_path, clock=clock)
    await service.on_child_record(_record("e1", NHS[0], need=1), P)
    await service.on_child_record(_withdraw("e1"), P)
    assert service.windows[CHILD]["gone"] == {"e1": int(T0)}
    assert service.windows[CHILD]["v"] == 2
    clock.wait(KEEP)
    await service.on_child_record(_record("e2", NHS[0], need=1), P)  # a write: forgets
    assert "e1" in service.windows[CHILD]["gone"]  # the keep's last second
    clock.wait(SECOND)
    await service.on_child_record(_record("e3", NHS[0], need=1), P)
    assert service.windows[CHILD]["gone"] == {}


async def test_a_households_gone_id_is_dated_and_forgotten_the_same_way(tmp_path: Path) -> None:
    clock = Clock()
    service, _ = _service(tmp_path, clock=clock)
    await service.on_household_record(_household_record("e1"), Q)
    await service.on_household_record(_withdraw("e1"), Q)
    assert service.households[HOUSEHOLD]["gone"] == {"e1": int(T0)}
    assert service.households[HOUSEHOLD]["v"] == 2
    clock.wait(KEEP)
    await service.on_household_record(_household_record("e2"), Q)
    assert "e1" in service.households[HOUSEHOLD]["gone"]
    clock.wait(SECOND)
    await service.on_household_record(_household_record("e3"), Q)
    assert service.households[HOUSEHOLD]["gone"] == {}


async def test_gone_ids_follow_the_markers_keep_as_it_changes_and_for_good(
    tmp_path: Path,
) -> None:
    """A keep the topics' settings lengthen while the service runs keeps them longer; for
    good, they are never forgotten."""
    clock = Clock()
    service, _ = _service(tmp_path, clock=clock)
    await service.on_child_record(_record("e1", NHS[0], need=1), P)
    await service.on_child_record(_withdraw("e1"), P)
    service.withdrawn.change(KEEP + timedelta(days=90))
    clock.wait(KEEP + SECOND)
    await service.on_child_record(_record("e2", NHS[0], need=1), P)
    assert "e1" in service.windows[CHILD]["gone"]
    service.withdrawn.change(None)
    clock.wait(timedelta(days=3650))
    await service.on_child_record(_record("e3", NHS[0], need=1), P)
    assert "e1" in service.windows[CHILD]["gone"]


async def test_gone_ids_keep_a_lowered_keeps_old_keep_until_the_new_one_has_passed(
    tmp_path: Path,
) -> None:
    """180 days lowered to 90, read 10 days after e1 went: e1 stays gone while the 180 days
    hold (until 100 days after it went), as its marker does, and is forgotten after."""
    clock = Clock()
    service, _ = _service(tmp_path, clock=clock)
    service.withdrawn.change(KEEP + timedelta(days=90))
    await service.on_child_record(_record("e1", NHS[0], need=1), P)
    await service.on_child_record(_withdraw("e1"), P)  # T0
    clock.wait(timedelta(days=10))
    service.withdrawn.change(KEEP)
    clock.wait(timedelta(days=85))  # T0 + 95 days: past 90, within the 180 held
    await service.on_child_record(_record("e2", NHS[0], need=1), P)
    assert "e1" in service.windows[CHILD]["gone"]
    clock.wait(timedelta(days=5) + SECOND)  # the 90 days have passed since the change
    await service.on_child_record(_record("e3", NHS[0], need=1), P)
    assert "e1" not in service.windows[CHILD]["gone"]


async def test_a_format_1_childs_plain_ids_still_count_and_are_dated_when_next_written(
    tmp_path: Path,
) -> None:
    """A state the previous version wrote: its ids count as gone as they are, and the
    state's next write dates them then, so they are forgotten a keep later, never at once."""
    clock = Clock()
    service, log = _service(tmp_path, clock=clock)
    service.windows[CHILD] = {"v": 1, "seq": 0, "newest": None, "recs": [], "fired": {},
                              "gone": ["e7", "e8"]}  # fmt: skip
    clock.wait(timedelta(days=1000))
    log.clear()
    await service.on_child_record(_record("e7", NHS[0]), P)  # need level 4: would flag
    assert [step for step, _ in log if step.startswith("send")] == []
    assert service.windows[CHILD]["gone"] == ["e7", "e8"]  # seen: the state as it was
    await service.on_child_record(_record("e9", NHS[0], need=1), P)
    state = service.windows[CHILD]
    assert state["v"] == 2
    assert state["gone"] == {"e7": int(clock.now), "e8": int(clock.now)}
    clock.wait(KEEP)
    await service.on_child_record(_record("e10", NHS[0], need=1), P)
    assert set(service.windows[CHILD]["gone"]) == {"e7", "e8"}
    clock.wait(SECOND)
    await service.on_child_record(_record("e11", NHS[0], need=1), P)
    assert service.windows[CHILD]["gone"] == {}


async def test_a_format_1_households_plain_ids_are_dated_when_next_written(
    tmp_path: Path,
) -> None:
    clock = Clock()
    service, log = _service(tmp_path, clock=clock)
    service.households[HOUSEHOLD] = {"v": 1, "seq": 0, "newest": None, "recs": [],
                                     "fired": {}, "gone": ["e7"]}  # fmt: skip
    clock.wait(timedelta(days=1000))
    log.clear()
    await service.on_household_record(_household_record("e7"), Q)
    assert [step for step, _ in log if step.startswith("send")] == []
    assert service.households[HOUSEHOLD]["gone"] == ["e7"]
    await service.on_household_record(_household_record("e9"), Q)
    assert service.households[HOUSEHOLD]["gone"] == {"e7": int(clock.now)}
    assert service.households[HOUSEHOLD]["v"] == 2


def _view(event_id: str, day: int) -> dict[str, Any]:
    at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=day)
    return {"event_id": event_id, "occurred_at": at.isoformat(), "sender": "wmp",
            "type": "police.child_concern", "need_level": 1, "categories": [],
            "subjects": [{"role": "child", "nhs_number": NHS[0], **HOME}]}  # fmt: skip


def test_ids_trimmed_out_of_the_window_are_dated_and_forgotten_after_the_keep() -> None:
    """A record that left the window (more than twice the longest window behind the newest)
    stays as an id, so a late redelivery still counts as seen, for as long as one could come."""
    clock = Clock()
    rules = load_bundle(REPO / "policies").flag_rules
    engine = FlagEngine(rules, "sandwell-coord", SECRET, clock=clock,
                        gone_keep=KEEP.total_seconds)  # fmt: skip
    states: dict[str, Any] = {}
    engine.process(_view("e1", 0), states)
    clock.wait(timedelta(hours=1))
    engine.process(_view("e2", 1000), states)
    assert states[CHILD]["gone"] == {"e1": int(clock.now)}
    assert states[flagging.HOUSEHOLD_PREFIX + HOUSEHOLD]["gone"] == {"e1": int(clock.now)}
    assert engine.process(_view("e1", 0), states) == []  # seen
    assert [r[2] for r in states[CHILD]["recs"]] == ["e2"]
    clock.wait(KEEP + SECOND)
    engine.process(_view("e3", 1000), states)
    assert states[CHILD]["gone"] == {}
    assert states[flagging.HOUSEHOLD_PREFIX + HOUSEHOLD]["gone"] == {}


def test_an_engine_given_no_keep_keeps_gone_ids_for_good() -> None:
    """As scenarios and benchmarks run it: nothing forgotten, as before."""
    clock = Clock()
    engine = FlagEngine(load_bundle(REPO / "policies").flag_rules, "t", SECRET, clock=clock)
    states: dict[str, Any] = {}
    engine.process(_view("e1", 0), states)
    states[CHILD] = engine.withdraw(states[CHILD], ["e1"])
    clock.wait(timedelta(days=3650))
    engine.process(_view("e2", 1), states)
    assert states[CHILD]["gone"] == {"e1": int(T0)}


def test_adopting_a_format_1_state_dates_its_ids_and_keeps_the_later_time() -> None:
    clock = Clock()
    engine = FlagEngine(load_bundle(REPO / "policies").flag_rules, "t", SECRET, clock=clock)
    old = {"v": 1, "seq": 1, "newest": None, "recs": [], "fired": {}, "gone": ["e1", "e2"]}
    mine = {"v": 2, "seq": 0, "newest": None, "recs": [], "fired": {},
            "gone": {"e2": int(T0) - 50, "e3": int(T0) - 100}}  # fmt: skip
    merged = engine.adopt(mine, "old", old)
    assert merged is not None
    assert merged["v"] == 2
    # The later time of each, in the order they went (e1 and e2 dated now).
    assert list(merged["gone"].items()) == [("e3", int(T0) - 100), ("e2", int(T0)),
                                            ("e1", int(T0))]  # fmt: skip


def test_an_id_out_of_order_is_kept_longer_never_shorter() -> None:
    gone = {"a": 100, "b": 300, "c": 200}
    assert forget(dict(gone), Forget(now=350, keep=100)) == {"b": 300, "c": 200}
    assert forget(dict(gone), Forget(now=401, keep=100)) == {}
    assert forget(dict(gone), Forget(now=10**9, keep=None)) == gone
