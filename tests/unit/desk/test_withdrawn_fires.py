"""A flag whose records are all withdrawn stops blocking its rule: the next incidents in the
window flag again. A flag with any record left, and a state written before the engine kept
a fire's records, still block, as the brief's once-per-window rule says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from broker.desk import ChildState, Flag, FlagEngine
from broker.policy import load_bundle

REPO = Path(__file__).resolve().parents[3]
SECRET = b"k" * 32
T0 = datetime(2026, 3, 1, 21, tzinfo=UTC)
CHILD = {"role": "child", "nhs_number": "9993010006"}
SIBLING = {"role": "child", "nhs_number": "9990166137"}
HOME = {"address": "27 Chapman Close, Tipton", "postcode": "DY4 8RT"}


def _engine() -> FlagEngine:
    return FlagEngine(load_bundle(REPO / "policies").flag_rules, "sandwell-coord", SECRET)


def _da(event_id: str, day: float, *subjects: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "type": "police.domestic_incident", "sender": "wmp",
            "occurred_at": (T0 + timedelta(days=day)).isoformat(), "need_level": 3,
            "categories": ["domestic_abuse"], "subjects": list(subjects or [CHILD])}  # fmt: skip


def _withdraw(engine: FlagEngine, states: dict[str, ChildState], ids: set[str]) -> None:
    for key, state in list(states.items()):
        if key.startswith("household:"):
            changed = engine.withdraw_household(state, ids)
        else:
            changed = engine.withdraw(state, ids)
        if changed is not None:
            states[key] = changed


def _raised(engine: FlagEngine, states: dict[str, ChildState], *views: Any) -> list[str]:
    return [f.rule for v in views for f in engine.process(v, states)]


def test_a_flag_whose_records_are_all_withdrawn_no_longer_blocks_new_flags() -> None:
    """The reviewer's case: two incidents flag, both are withdrawn, and the two genuine
    incidents of the next days flag again within the same 30 days."""
    engine, states = _engine(), {}
    assert _raised(engine, states, _da("a", 0), _da("b", 1)) == ["domestic-abuse-repeat"]
    _withdraw(engine, states, {"a", "b"})
    [state] = states.values()
    assert state["recs"] == []
    assert state["fired"] == {}
    assert _raised(engine, states, _da("c", 9)) == []  # one record: the rule needs two
    assert _raised(engine, states, _da("d", 10)) == ["domestic-abuse-repeat"]


def test_withdrawals_in_two_notices_take_the_fire_back_only_with_the_last_record() -> None:
    engine, states = _engine(), {}
    _raised(engine, states, _da("a", 0), _da("b", 1))
    _withdraw(engine, states, {"a"})
    # "b" is still there: a third incident is within the flag's window and does not flag.
    assert _raised(engine, states, _da("c", 2)) == []
    _withdraw(engine, states, {"b", "c"})
    assert _raised(engine, states, _da("d", 3), _da("e", 4)) == ["domestic-abuse-repeat"]


def test_a_flag_with_a_record_left_still_blocks_for_its_window() -> None:
    engine, states = _engine(), {}
    _raised(engine, states, _da("a", 0), _da("b", 1))
    _withdraw(engine, states, {"a"})
    assert _raised(engine, states, _da("c", 5), _da("d", 6)) == []


def test_a_state_written_before_fires_kept_their_records_still_blocks() -> None:
    """An older service's state has no ``on``: its fires stay whatever is withdrawn."""
    engine, states = _engine(), {}
    _raised(engine, states, _da("a", 0), _da("b", 1))
    [key] = states
    states[key] = {k: v for k, v in states[key].items() if k != "on"}
    _withdraw(engine, states, {"a", "b"})
    assert states[key]["recs"] == []
    assert "domestic-abuse-repeat" in states[key]["fired"]
    assert _raised(engine, states, _da("c", 9), _da("d", 10)) == []


def test_a_household_flag_whose_records_are_all_withdrawn_no_longer_blocks() -> None:
    engine, states = _engine(), {}
    named, sibling = {**CHILD, **HOME}, {**SIBLING, **HOME}
    concern = {**_da("h1", 0, sibling), "type": "police.child_concern", "categories": []}
    first = _raised(engine, states, concern, _da("h2", 1, named))
    assert first.count("household-domestic-abuse") >= 1
    _withdraw(engine, states, {"h1", "h2"})
    house = next(v for k, v in states.items() if k.startswith("household:"))
    assert house["fired"] == {}
    again = _raised(engine, states, {**concern, "event_id": "h3"}, _da("h4", 8, named))
    assert "household-domestic-abuse" in again


def test_every_flag_the_engine_raises_says_the_service_takes_it_back() -> None:
    """Each fire's records are kept with it now, child rules', household rules' and a
    sibling's alike, so each flag tells the desk it is taken back once they are withdrawn."""
    engine, states = _engine(), {}
    named, sibling = {**CHILD, **HOME}, {**SIBLING, **HOME}
    concern = {**_da("h1", 0, sibling), "type": "police.child_concern", "categories": []}
    flags = [f for v in (concern, _da("h2", 1, named), _da("h3", 2, named))
             for f in engine.process(v, states)]  # fmt: skip
    assert {f.rule for f in flags} >= {"household-domestic-abuse", "domestic-abuse-repeat"}
    assert len({f.child for f in flags if f.household}) == 2  # the sibling's too
    assert all(f.withdrawable for f in flags)


def test_a_flag_an_older_service_sent_reads_as_not_taken_back() -> None:
    body = {"flag_id": "f" * 32, "party": "sandwell-coord", "rule": "multi-agency",
            "title": "t", "child": "c" * 32, "event_ids": ["a"], "trigger_event_id": "a",
            "raised_at": T0.isoformat(), "window_seconds": 86400}  # fmt: skip
    assert Flag.model_validate(body).withdrawable is False
