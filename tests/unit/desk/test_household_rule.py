"""What the household rule's description and docs/desk.md promise: a sibling already at the
address is flagged when an incident naming only the other child arrives, and once per window;
a child who has since been placed at another address, or whom the incident itself places at
another, is not flagged there."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from broker.desk import ChildState, FlagEngine, child_key
from broker.desk._household import HouseholdMessage
from broker.policy import load_bundle

REPO = Path(__file__).resolve().parents[3]
SECRET = b"k" * 32
T0 = datetime(2026, 11, 1, 10, tzinfo=UTC)
HOME = {"address": "27 Chapman Close, Tipton", "postcode": "DY4 8RT"}
NAMED, SIBLING = "9990109281", "9990166137"


ELSEWHERE = {"address": "9 Hill Road", "postcode": "B69 1AB"}
KEY = {n: child_key(SECRET, {"nhs_number": n}) for n in (NAMED, SIBLING)}


def _view(
    event_id: str, day: int, nhs: str, cats: list[str], *more: dict[str, Any]
) -> dict[str, Any]:
    """A record about ``nhs`` at ``HOME`` (and ``more`` subjects, as given)."""
    return {"event_id": event_id, "type": "police.child_concern", "sender": "wmp",
            "occurred_at": (T0 + timedelta(days=day)).isoformat(), "need_level": 2,
            "categories": cats,
            "subjects": [{"role": "child", "nhs_number": nhs, **HOME}, *more]}  # fmt: skip


def _raising() -> Callable[[dict[str, Any]], list[tuple[str, str, tuple[str, ...]]]]:
    engine = FlagEngine(load_bundle(REPO / "policies").flag_rules, "sandwell-coord", SECRET)
    states: dict[str, ChildState] = {}

    def raised(view: dict[str, Any]) -> list[tuple[str, str, tuple[str, ...]]]:
        return [(f.rule, f.child, f.event_ids) for f in engine.process(view, states)]

    return raised


def test_a_sibling_at_the_address_is_flagged_by_the_incident_naming_the_other_child() -> None:
    engine = FlagEngine(load_bundle(REPO / "policies").flag_rules, "sandwell-coord", SECRET)
    states: dict[str, ChildState] = {}
    key = {n: child_key(SECRET, {"nhs_number": n}) for n in (NAMED, SIBLING)}

    def raised(view: dict[str, Any]) -> list[tuple[str, str, tuple[str, ...]]]:
        return [(f.rule, f.child, f.event_ids) for f in engine.process(view, states)]

    assert raised(_view("h-1", 0, SIBLING, [])) == []
    incident = raised(_view("h-2", 9, NAMED, ["domestic_abuse"]))
    assert incident == [
        ("household-domestic-abuse", key[NAMED], ("h-1", "h-2")),
        ("household-domestic-abuse", key[SIBLING], ("h-1", "h-2")),
    ]
    assert raised(_view("h-3", 20, SIBLING, [])) == []  # once per window


def test_a_child_since_placed_at_another_address_is_no_sibling_at_the_old_one() -> None:
    """The review's case a: the sibling's record at the address, then one at another; an
    incident naming the other child at the first address flags only that child."""
    raised = _raising()
    assert raised(_view("b-0", 0, SIBLING, [])) == []
    moved = {"role": "child", "nhs_number": SIBLING, **ELSEWHERE}
    assert raised({**_view("b-5", 5, SIBLING, []), "subjects": [moved]}) == []
    assert raised(_view("a-9", 9, NAMED, ["domestic_abuse"])) == [
        ("household-domestic-abuse", KEY[NAMED], ("b-0", "a-9")),
    ]


def test_a_child_placed_back_at_the_address_is_a_sibling_there_again() -> None:
    raised = _raising()
    moved = {"role": "child", "nhs_number": SIBLING, **ELSEWHERE}
    assert raised(_view("b-0", 0, SIBLING, [])) == []
    assert raised({**_view("b-5", 5, SIBLING, []), "subjects": [moved]}) == []
    assert raised(_view("b-7", 7, SIBLING, [])) == []
    assert raised(_view("a-9", 9, NAMED, ["domestic_abuse"])) == [
        ("household-domestic-abuse", KEY[NAMED], ("b-0", "b-7", "a-9")),
        ("household-domestic-abuse", KEY[SIBLING], ("b-0", "b-7", "a-9")),
    ]


def test_a_child_the_incident_places_at_another_address_is_no_sibling_at_this_one() -> None:
    """The review's case b: one record names the child at the address and the sibling (who
    had a record there) at another; the sibling is not flagged at the first address."""
    raised = _raising()
    assert raised(_view("b-0", 0, SIBLING, [])) == []
    elsewhere = {"role": "child", "nhs_number": SIBLING, **ELSEWHERE}
    flags = raised(_view("ab-9", 9, NAMED, ["domestic_abuse"], elsewhere))
    household = [(child, ids) for rule, child, ids in flags if rule.startswith("household")]
    assert household == [(KEY[NAMED], ("b-0", "ab-9"))]  # none for the sibling


def test_a_household_message_an_older_service_wrote_still_reads() -> None:
    """Without ``named`` (before 2026-12-07): only the record's children at the address are
    left out of the sibling check, as then."""
    body = {"household": "h", "child": "c", "residents": ["c"], "record": [1, "e", "wmp",
            "police.child_concern", 2, []], "rules": {}}  # fmt: skip
    assert HouseholdMessage.from_json(body).named == ()
