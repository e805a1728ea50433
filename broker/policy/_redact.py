"""``redact``: the recipient's view of an event, exactly as its decision allows.

The view (a JSON-ready dict)::

    {"event_id", "type", "sender", "occurred_at",          # always travel
     "reference", "need_level", ...,                        # shared event fields
     "subjects": [{"role", "given_name", "family_name", "dob", ...}],   # included people
     "sharing": {"outcome", "recipient", "agreement_id", "agreement_version", "clause_ids",
                 "purpose", "lawful_basis", "policy_version", "review_required"}}

A field shared plainly keeps its event key (``subject.name`` → ``given_name`` and
``family_name``). A transformed field travels under the transform's name instead, so a
recipient can never mistake a generalised value for the original: ``age_band``,
``year_of_birth``, ``postcode_district``, ``initials``, and ``<key>_pseudonym`` (e.g.
``nhs_number_pseudonym``, ``name_pseudonym``, ``reference_pseudonym``).
"""

from __future__ import annotations

from datetime import UTC, date
from typing import Any

from broker.errors import ConfigError, PolicyError
from broker.events import ContactEvent, Subject
from broker.policy._decision import Decision
from broker.policy._transform import age_band, initials, pseudonym, year_of_birth

__all__ = ["redact"]

_EVENT_KEYS = {
    "event.reference": "reference",
    "event.need_level": "need_level",
    "event.child_present": "child_present",
    "event.summary": "summary",
    "event.child_voice": "child_voice",
    "event.categories": "categories",
    "event.location": "location",
    "event.service": "service",
    "event.outcome": "outcome",
}


class _Pseudo:
    def __init__(self, key: bytes | None, recipient: str) -> None:
        self.key = key
        self.recipient = recipient

    def __call__(self, path: str, value: str | None) -> str | None:
        if value is None:
            return None
        if not self.key:
            raise ConfigError(f"the decision pseudonymises {path}: a pseudonym key is required")
        return pseudonym(self.key, self.recipient, path, value)


def _name(s: Subject, kind: str | None, pseudo: _Pseudo) -> dict[str, Any]:
    if kind == "initials":
        return {"initials": initials(s.given_name, s.family_name) or None}
    if kind == "pseudonym":
        full = " ".join(n for n in (s.given_name, s.family_name) if n) or None
        return {"name_pseudonym": pseudo("subject.name", full)}
    return {"given_name": s.given_name, "family_name": s.family_name}


def _dob(s: Subject, kind: str | None, pseudo: _Pseudo, on: date) -> dict[str, Any]:
    dob = s.dob
    if kind == "age_band":
        return {"age_band": age_band(dob, on) if dob else None}
    if kind == "year_of_birth":
        return {"year_of_birth": year_of_birth(dob) if dob else None}
    if kind == "pseudonym":
        return {"dob_pseudonym": pseudo("subject.dob", dob.isoformat() if dob else None)}
    return {"dob": dob.isoformat() if dob else None}


def _plan(fields: tuple[str, ...], transforms: dict[str, str]) -> list[tuple[str, str | None]]:
    """The subject fields to write, in order, each with its transform (or None)."""
    return [(path, transforms.get(path)) for path in fields if path.startswith("subject.")]


def _subject_view(
    s: Subject, plan: list[tuple[str, str | None]], pseudo: _Pseudo, on: date
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, kind in plan:
        if path == "subject.name":
            out.update(_name(s, kind, pseudo))
        elif path == "subject.dob":
            out.update(_dob(s, kind, pseudo, on))
        elif path == "subject.postcode" and kind == "postcode_district":
            out["postcode_district"] = s.postcode.split(" ", 1)[0] if s.postcode else None
        else:
            key = path.removeprefix("subject.")
            value = getattr(s, key)
            if kind == "pseudonym":
                out[f"{key}_pseudonym"] = pseudo(path, value)
            else:
                out[key] = value
    return out


def redact(
    event: ContactEvent, decision: Decision, *, pseudonym_key: bytes | None = None
) -> dict[str, Any]:
    """The view ``decision.recipient`` receives; a refusal has no view (``PolicyError``)."""
    if decision.outcome == "not_shared":
        raise PolicyError(f"nothing is shared with {decision.recipient}: no view to build")
    if decision.event_id != event.event_id:
        raise PolicyError("the decision is for a different event")
    pseudo = _Pseudo(pseudonym_key, decision.recipient)
    view: dict[str, Any] = {
        "event_id": str(event.event_id),
        "type": event.type,
        "sender": event.sender,
        "occurred_at": event.occurred_at.isoformat().replace("+00:00", "Z"),
    }
    for path in decision.fields_shared:
        key = _EVENT_KEYS.get(path)
        if key is None:
            continue  # subject fields below; event.type and event.occurred_at always travel
        value = getattr(event, key)
        if decision.transforms.get(path) == "pseudonym":
            view[f"{key}_pseudonym"] = pseudo(path, value)
        else:
            view[key] = list(value) if isinstance(value, tuple) else value
    on = decision.decided_at.astimezone(UTC).date()
    if decision.subject_scopes:
        scopes = {sc.subject: sc for sc in decision.subject_scopes}
        plans = {i: _plan(sc.fields, sc.transforms) for i, sc in scopes.items()}
        subjects = [
            # With scopes, a subject without one gets nothing: never the union by default.
            _subject_view(event.subjects[i], plans.get(i, []), pseudo, on)
            for i in decision.subjects
        ]
    else:  # every subject gets the same fields: one plan for all
        plan = _plan(decision.fields_shared, decision.transforms)
        subjects = [_subject_view(event.subjects[i], plan, pseudo, on) for i in decision.subjects]
    if any(subjects):
        view["subjects"] = subjects
    basis = decision.lawful_basis
    view["sharing"] = {
        "outcome": decision.outcome,
        "recipient": decision.recipient,
        "agreement_id": decision.agreement_id,
        "agreement_version": decision.agreement_version,
        "clause_ids": list(decision.clause_ids),
        "purpose": decision.purpose,
        "lawful_basis": basis.model_dump(exclude_none=True) if basis else None,
        "policy_version": decision.policy_version,
        "review_required": decision.review_required,
    }
    return view
