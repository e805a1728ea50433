"""A share is validated once per recipient, clauses, restrictions and consent state, then
copied for each event (``_decide``, as refusals are): what it copies must be only what is the
same for every such event, and what it fills in must be the event's own."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

from broker.events import ContactEvent
from broker.policy import Policy
from tests.unit.policy.kit import AT, CHILD2_NHS, by_recipient, consent, event, load, subject


def _events() -> list[ContactEvent]:
    """One run of events that reach the same clauses with different people, restrictions,
    consent states and overrides, each under its own id."""

    def ev(**over: object) -> ContactEvent:
        return event(event_id=str(uuid.uuid4()), **over)

    child2 = subject("child", nhs_number=CHILD2_NHS, given_name="Bea", school_urn="100002")
    return [
        ev(),
        ev(subjects=[subject("child")]),
        ev(subjects=[subject("parent"), subject("child"), child2]),
        ev(categories=["refuge"]),  # a restriction withholds the address
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


def test_shares_from_a_warm_engine_are_those_of_a_fresh_one(tmp_path: Path) -> None:
    warm = load(tmp_path / "warm")
    runs = [
        (e, consents)
        for e in _events()
        for consents in ([], [consent()], [consent(state="refused", recipients=["coord"])])
    ]
    for i, (e, consents) in enumerate(runs):
        at = AT + timedelta(minutes=i)
        made = warm.decide(e, consents, at=at)
        fresh = load(tmp_path / f"fresh{i}").decide(e, consents, at=at)
        assert made == fresh
        assert any(d.shares for d in made)
        for d in made:
            assert (d.event_id, d.decided_at) == (e.event_id, at)
            assert sum(d.subject_roles.values()) == len(d.subjects)


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
