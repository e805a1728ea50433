"""Why a condition did not hold, for ``accord policy explain``: false, or not evaluable.

``decide`` treats a condition that fails at run time (a type mismatch, a missing key, a
function given what it cannot take) on the safe side: a clause's ``when`` does not hold, a
restriction's does. The decision says ``condition-false`` or ``suppressed`` either way, and
it cannot say more: a ``Decision`` is what the worker audits, and its fields are the audit
record's (tests/unit/pipeline/test_encoding.py). So explain, and only explain, runs the
conditions a decision rests on once more, here, and keeps the error.

The error is described by its class and a fixed phrase, never by its message: CEL quotes
the values it failed on (a missing map key is the key, which may be an event's free text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal

from broker.events import ContactEvent, postcode_district
from broker.policy._cel import Condition, EventActivation
from broker.policy._decide import covering_hubs, hub_postcodes
from broker.policy._decision import Decision

if TYPE_CHECKING:
    from broker.policy._policy import Policy

__all__ = ["NoHub", "Unevaluated", "no_candidates", "no_hub", "unevaluated_conditions"]

_FUNCTION: Final = re.compile(r"Function '([A-Za-z_]\w{0,40})' error")
_PHRASES: Final = {
    "KeyError": "no such key or field",
    "IndexError": "index out of range",
    "ZeroDivisionError": "division by zero",
    "TypeError": "no operation for these operand types (CEL does not convert between types)",
}


@dataclass(frozen=True, slots=True)
class Unevaluated:
    """A condition a decision rests on that could not be evaluated, and why (no values)."""

    condition: Literal["clause", "restriction"]
    #: ``agreement / clause`` for a clause, the restriction's id for a restriction.
    name: str
    error: str

    def as_json(self) -> dict[str, str]:
        return {"condition": self.condition, "name": self.name, "error": self.error}


def describe(exc: BaseException) -> str:
    """``Class: what``, from a fixed vocabulary: nothing of the event's values."""
    kind = type(exc).__name__
    text = str(exc)
    if (found := _FUNCTION.match(text)) is not None:
        return f"{kind}: function {found.group(1)}() could not take its argument"
    if kind == "RuntimeError" and text.startswith("Undefined variable or function"):
        return f"{kind}: undefined variable or function"
    return f"{kind}: {_PHRASES[kind]}" if kind in _PHRASES else kind


def _error(cond: Condition, act: EventActivation, recipient: dict[str, Any] | None) -> str | None:
    try:
        # As ``Condition`` runs one that reads the recipient: the event as it observes it.
        value = cond.program.execute(
            {"event": act.cel_event(cond.view), "recipient": dict(recipient or {})}
        )
    except Exception as exc:  # noqa: BLE001  # any CEL runtime failure is what is asked for
        return describe(exc)
    return None if isinstance(value, bool) else "gave neither true nor false"


def unevaluated_conditions(
    policy: Policy, event: ContactEvent, decision: Decision, *, at: datetime
) -> tuple[Unevaluated, ...]:
    """The clause conditions behind a ``condition-false`` decision, and the restrictions it
    names (suppressing, or withholding fields), that could not be evaluated at ``at``."""
    index = policy._index  # the compiled conditions decide used
    act = EventActivation(event, at)
    recipient = index.cel_parties.get(decision.recipient)
    out: list[Unevaluated] = []
    if decision.reason == "condition-false":
        routed = index.by_route.get((event.sender, event.type), ())
        for ref in decision.grounds:
            for cc in routed:
                same = (cc.ref.agreement_id, cc.ref.clause_id) == (ref.agreement_id, ref.clause_id)
                if same and cc.when is not None and (err := _error(cc.when, act, recipient)):
                    out.append(Unevaluated("clause", f"{ref.agreement_id} / {ref.clause_id}", err))
                    break
    for restriction in index.restrictions:
        named = restriction.id in decision.restrictions
        if named and (err := _error(restriction.when, act, recipient)):
            out.append(Unevaluated("restriction", restriction.id, err))
    return tuple(out)


def no_candidates(policy: Policy, event: ContactEvent) -> str:
    """Why ``event`` has no candidate recipient, in one sentence naming parties, agreements,
    clauses and selectors only: never a postcode, a URN or anything else of a person.

    No clause in force routes the event; or every clause that does routes it only to a
    selector (``hub:locality``, ``school:of-child``) that found no party for these people,
    which is not the same fault and not fixed in the same place.
    """
    index = policy._index  # what decide routed by
    what = f"{event.type} from {event.sender}"
    if event.sender not in index.parties:
        return f"{event.sender} is not a party in the bundle, so nothing it sends is routed."
    routed = index.by_route.get((event.sender, event.type), ())
    if not routed:
        drafts = [
            a.id
            for a in policy.bundle.agreements
            if a.status == "draft"
            and any(event.sender in c.from_ and event.type in c.event_types for c in a.clauses)
        ]
        if drafts:
            named = ", ".join(drafts[:-1]) + f" and {drafts[-1]}" if len(drafts) > 1 else drafts[0]
            which = "is a draft" if len(drafts) == 1 else "are drafts"
            return (f"no clause in force routes {what}; {named} would, but {which}, and a "
                    "draft decides nothing.")  # fmt: skip
        return f"no clause routes {what}."
    names = list(dict.fromkeys(f"{c.agreement_id} / {c.ref.clause_id}" for c in routed))
    selectors, why = [], []
    if any(c.to_hubs for c in routed):
        selectors.append("hub:locality")
        why.append(_no_hub(event))
    if any(c.to_schools for c in routed):
        selectors.append("school:of-child")
        why.append(_no_school(event))
    verb = "routes" if len(names) == 1 else "route"
    return (f"{', '.join(names)} {verb} {what} only to {' and '.join(selectors)}, but "
            f"{'; and '.join(why)}.")  # fmt: skip


def _no_hub(event: ContactEvent) -> str:
    children = [s for s in event.subjects if s.role == "child"]
    whose = "child" if children else "person"  # hub:locality reads anyone's with no child
    if not any(s.postcode for s in children or event.subjects):
        return f"no {whose} in the event has a postcode, so no hub's area can cover them"
    return f"no hub's localities cover the postcode of any {whose} in the event"


def _no_school(event: ContactEvent) -> str:
    children = [s for s in event.subjects if s.role == "child"]
    if not any(s.school_urn for s in children):
        return "no child in the event has a school URN"
    return "no school in the bundle has the URN of any child in the event"


@dataclass(frozen=True, slots=True)
class NoHub:
    """A ``hub:locality`` clause routing the event that found no hub: the districts it
    looked in (outward codes only, never a whole postcode), none when no one it reads has
    a postcode."""

    agreement_id: str
    clause_id: str
    districts: tuple[str, ...]

    def said(self) -> str:
        clause = f"clause {self.clause_id} ({self.agreement_id})"
        if not self.districts:
            return f"{clause}: no hub found, as no one hub:locality reads has a postcode"
        which = "district" if len(self.districts) == 1 else "districts"
        return f"{clause}: no hub covers postcode {which} {', '.join(self.districts)}"

    def as_json(self) -> dict[str, object]:
        return {
            "agreement_id": self.agreement_id,
            "clause_id": self.clause_id,
            "selector": "hub:locality",
            "postcode_districts": list(self.districts),
        }


def no_hub(policy: Policy, event: ContactEvent) -> tuple[NoHub, ...]:
    """Each clause routing ``event`` to ``hub:locality`` when that found no hub. Without it
    a hub left out reads as a hub never meant, once someone else is told."""
    index = policy._index  # what decide routed by
    routed = [c for c in index.by_route.get((event.sender, event.type), ()) if c.to_hubs]
    if not routed or covering_hubs(index, event):
        return ()
    districts = tuple(dict.fromkeys(postcode_district(p) for p in hub_postcodes(event)))
    clauses = dict.fromkeys((c.agreement_id, c.ref.clause_id) for c in routed)
    return tuple(NoHub(aid, cid, districts) for aid, cid in clauses)
