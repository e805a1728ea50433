"""A share is validated once per recipient, clauses, restrictions and consent state, then
copied for each event (``_decide``, as refusals are): what it copies must be only what is the
same for every such event, and what it fills in must be the event's own."""

from __future__ import annotations

import copy
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from broker.events import ContactEvent
from broker.policy import Policy
from tests.unit.policy.kit import (
    AT,
    CHILD2_NHS,
    agreement,
    by_recipient,
    consent,
    default_agreements,
    event,
    load,
    subject,
)

# Two clauses from one sender and event type to one recipient, told apart by need level: the
# same recipient, type, sender and consent state reached by different clauses in turn.
_HOUSING: dict[str, Any] = {
    "from": ["housing"],
    "event_types": ["housing.eviction_risk"],
    "to": ["coord"],
    "purpose": "safeguarding",
    "lawful_basis": {"article6": "public_task"},
    "consent": "not_required",
}
_HOUSING_HIGH = {**_HOUSING, "id": "housing-high", "when": "event.need_level >= 3",
                 "share": ["subject.name", "event.need_level"]}  # fmt: skip
_HOUSING_LOW = {**_HOUSING, "id": "housing-low", "when": "event.need_level <= 2",
                "share": ["subject.name", "subject.dob"]}  # fmt: skip


class _NoCache(dict[tuple[Any, ...], Any]):
    """A template cache that keeps nothing, so every decision is validated afresh."""

    def __setitem__(self, key: tuple[Any, ...], value: Any) -> None:
        pass


def _engines(root: Path) -> tuple[Policy, Policy]:
    """The same bundle twice: one keeping templates, one keeping none (the oracle).

    A fresh engine is no oracle: it caches during its own decide, so a key that collides
    within one event (two hubs by one clause) would be copied there too.
    """
    agreements = [*default_agreements(), agreement("housing", [_HOUSING_HIGH, _HOUSING_LOW])]
    warm = load(root / "warm", agreements=copy.deepcopy(agreements))
    cold = load(root / "cold", agreements=agreements)
    object.__setattr__(cold._index, "shares", _NoCache())
    object.__setattr__(cold._index, "refusals", _NoCache())
    return warm, cold


def _events() -> list[ContactEvent]:
    """One run of events that reach the same clauses with different people, recipients,
    clauses, senders, types, restrictions, consent states and overrides, each under its own id.
    """

    def ev(**over: object) -> ContactEvent:
        return event(event_id=str(uuid.uuid4()), **over)

    child2 = subject("child", nhs_number=CHILD2_NHS, given_name="Bea", school_urn="100002")
    wv10_6 = [subject("child", postcode="WV10 6AA"), subject("parent", postcode="WV10 6AA")]
    return [
        ev(),
        ev(subjects=[subject("child")]),
        ev(subjects=[subject("parent"), subject("child"), child2]),  # two schools, one clause
        ev(subjects=wv10_6),  # the district's hub and the sector's, by one clause
        ev(categories=["refuge"]),  # a restriction withholds the address
        # One clause (police to coord), the same sender, another event type.
        ev(type="police.child_concern"),
        # One clause (to the hub), the same event type, another sender.
        ev(type="housing.eviction_risk", sender="wmp", need_level=2),
        ev(type="housing.eviction_risk", sender="housing", need_level=2),
        # The same recipient, type and sender through one clause, then through another.
        ev(type="housing.eviction_risk", sender="housing", need_level=3),
        ev(type="housing.eviction_risk", sender="housing", need_level=1),
        # Overrides where consent is not given, on two grounds, under each consent state.
        ev(type="health.ae_attendance", sender="swbh", need_level=4),
        ev(
            type="health.ae_attendance",
            sender="swbh",
            safeguarding={"concern": True, "justification": "Bruising seen."},
        ),
        ev(type="health.ae_attendance", sender="swbh", need_level=4),
        ev(need_level=2, subjects=[subject("child"), subject("parent"), subject("parent")]),
        ev(),
    ]


def test_shares_from_a_warm_engine_are_those_of_an_engine_keeping_no_templates(
    tmp_path: Path,
) -> None:
    warm, cold = _engines(tmp_path)
    runs = [
        (e, consents)
        for e in _events()
        for consents in ([], [consent()], [consent(state="refused", recipients=["coord"])])
    ]
    shares = 0
    for i, (e, consents) in enumerate(runs):
        at = AT + timedelta(minutes=i)
        made = warm.decide(e, consents, at=at)
        assert made == cold.decide(e, consents, at=at)
        shares += sum(d.shares for d in made)
        for d in made:
            assert (d.event_id, d.decided_at) == (e.event_id, at)
            assert sum(d.subject_roles.values()) == len(d.subjects)
    assert shares > len(warm._index.shares) > 0  # templates were kept, and copied


def test_the_run_reaches_what_a_share_key_must_tell_apart(tmp_path: Path) -> None:
    """Two hubs and two schools by one clause in one event; coord by two clauses in turn."""
    warm, _ = _engines(tmp_path)
    decided = {e.event_id: warm.decide(e, [consent()], at=AT) for e in _events()}
    shared = [{d.recipient: d.clause_ids for d in ds if d.shares} for ds in decided.values()]
    assert any(s.keys() >= {"hub-wv10", "hub-wv10-6"} for s in shared)
    assert any(s.keys() >= {"school-a", "school-b"} for s in shared)
    assert {s["coord"] for s in shared if "coord" in s} >= {("housing-high",), ("housing-low",)}


def test_no_two_shares_hold_the_same_mutable_value(tmp_path: Path) -> None:
    policy: Policy = load(tmp_path)
    first, second = (by_recipient(policy.decide(e, [consent()], at=AT)) for e in _events()[:2])
    shared = [r for r, d in first.items() if d.shares and r in second and second[r].shares]
    assert any(first[r].subjects != second[r].subjects for r in shared)  # two people, then one
    for r in shared:
        assert first[r].transforms is not second[r].transforms
        assert first[r].subject_roles is not second[r].subject_roles
        first[r].transforms["subject.x"] = "initials"
        first[r].subject_roles["x"] = 9
        assert "subject.x" not in second[r].transforms
        assert "x" not in second[r].subject_roles
