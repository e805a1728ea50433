"""What the household rule's description and docs/desk.md promise: a sibling already at the
address is flagged when an incident naming only the other child arrives, and once per window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from broker.desk import ChildState, FlagEngine, child_key
from broker.policy import load_bundle

REPO = Path(__file__).resolve().parents[3]
SECRET = b"k" * 32
T0 = datetime(2026, 11, 1, 10, tzinfo=UTC)
HOME = {"address": "27 Chapman Close, Tipton", "postcode": "DY4 8RT"}
NAMED, SIBLING = "9990109281", "9990166137"


def _view(event_id: str, day: int, nhs: str, cats: list[str]) -> dict[str, Any]:
    return {"event_id": event_id, "type": "police.child_concern", "sender": "wmp",
            "occurred_at": (T0 + timedelta(days=day)).isoformat(), "need_level": 2,
            "categories": cats,
            "subjects": [{"role": "child", "nhs_number": nhs, **HOME}]}  # fmt: skip


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
