"""Building blocks for policy tests: a small self-contained bundle, events and consents.

The bundle mirrors the brief's example (one borough, police/health/housing, a co-ordinating
team, hubs by locality, schools) so these tests never depend on ../shared.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from broker.events import (
    ConsentRecord,
    ContactEvent,
    parse_consents,
    parse_event,
    postcode_district,
)
from broker.policy import Policy
from broker.policy._cel import Condition, EventActivation

AT = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)

# Synthetic 999-range NHS numbers with valid check digits.
CHILD_NHS = "9997877896"
CHILD2_NHS = "9999081002"
PARENT_NHS = "9991742182"

PARTIES: dict[str, Any] = {
    "wmp": {"name": "Police", "kind": "agency"},
    "swbh": {"name": "Hospital", "kind": "agency"},
    "housing": {"name": "Housing", "kind": "agency", "status": "active"},
    "coord": {"name": "Co-ordinating team", "kind": "coordinating_team"},
    "hub-tipton": {"name": "Tipton hub", "kind": "hub", "localities": ["DY4"]},
    "hub-wv10": {"name": "WV10 hub", "kind": "hub", "localities": ["WV10"]},
    "hub-wv10-6": {"name": "WV10 6 sector hub", "kind": "hub", "localities": ["WV10 6"]},
    "hub-wv1": {"name": "WV1 hub", "kind": "hub", "localities": ["WV1"]},
    "hub-closed": {
        "name": "Closed hub",
        "kind": "hub",
        "status": "suspended",
        "localities": ["B70"],
    },
    "school-a": {"name": "School A", "kind": "school", "urn": "100001"},
    "school-b": {"name": "School B", "kind": "school", "urn": "100002"},
}

POLICE_TO_COORD: dict[str, Any] = {
    "id": "police-to-coord",
    "from": ["wmp"],
    "event_types": ["police.domestic_incident", "police.child_concern"],
    "to": ["coord"],
    "purpose": "safeguarding",
    "lawful_basis": {"article6": "public_task", "article10": "safeguarding_children"},
    "consent": "not_required",
    "when": "event.need_level >= 2",
    "share": ["subject.name", "subject.dob", "subject.nhs_number", "subject.address",
              "subject.postcode", "subject.role", "event.reference", "event.summary",
              "event.location", "event.need_level"],
}  # fmt: skip
HEALTH_TO_COORD: dict[str, Any] = {
    "id": "health-to-coord",
    "from": ["swbh"],
    "event_types": ["health.ae_attendance"],
    "to": ["coord"],
    "purpose": "early_help",
    "lawful_basis": {"article6": "public_task", "article9": "health_or_social_care"},
    "consent": "required_unless_safeguarding",
    "share": ["subject.name", "subject.nhs_number", "event.need_level", "event.service"],
}
TO_HUB: dict[str, Any] = {
    "id": "to-hub",
    "from": ["wmp", "swbh", "housing"],
    "event_types": ["police.domestic_incident", "health.ae_attendance", "housing.eviction_risk"],
    "to": ["hub:locality"],
    "purpose": "early_help",
    "lawful_basis": {"article6": "public_task"},
    "consent": "required",
    "when": "event.need_level <= 3",
    "subjects": ["child", "parent"],
    "share": ["subject.name", "subject.dob", "subject.postcode", "event.need_level"],
    "transform": {"subject.dob": "age_band", "subject.postcode": "postcode_district"},
}
ENCOMPASS: dict[str, Any] = {
    "id": "encompass",
    "from": ["wmp"],
    "event_types": ["police.domestic_incident"],
    "to": ["school:of-child"],
    "purpose": "safeguarding",
    "lawful_basis": {"article6": "legal_obligation", "article10": "safeguarding_children"},
    "consent": "not_required",
    "when": "event.child_present",
    "subjects": ["child"],
    "share": ["subject.name", "subject.dob", "event.reference", "event.location"],
}


def agreement(aid: str, clauses: list[dict[str, Any]], **over: Any) -> dict[str, Any]:
    body = {
        "id": aid,
        "title": f"Agreement {aid}",
        "version": 1,
        "status": "approved",
        "valid_from": "2026-01-01",
        "valid_until": "2027-12-31",
        "clauses": clauses,
    }
    body.update(over)
    return body


def default_agreements() -> list[dict[str, Any]]:
    return [
        agreement("early-help", [copy.deepcopy(POLICE_TO_COORD), copy.deepcopy(HEALTH_TO_COORD),
                                 copy.deepcopy(TO_HUB)]),
        agreement("encompass", [copy.deepcopy(ENCOMPASS)], valid_from="2024-04-01",
                  valid_until="2028-03-31"),
    ]  # fmt: skip


def default_restrictions() -> list[dict[str, Any]]:
    return [
        {
            "id": "sensitive-services",
            "when": "event.service in ['sexual_health', 'termination_of_pregnancy']",
            "withhold": "all",
            "except_kinds": ["coordinating_team"],
        },
        {
            "id": "refuge-address",
            "when": "'refuge' in event.categories",
            "withhold": ["subject.address", "subject.postcode", "event.location"],
        },
    ]


def write_bundle(
    root: Path,
    *,
    parties: dict[str, Any] | None = None,
    agreements: list[dict[str, Any]] | None = None,
    restrictions: list[dict[str, Any]] | None = None,
) -> Path:
    """Write a bundle folder (defaults: the kit's bundle) and return its path."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "agreements").mkdir(exist_ok=True)
    body = copy.deepcopy(PARTIES) if parties is None else parties
    (root / "parties.yaml").write_text(yaml.safe_dump({"parties": body}, sort_keys=False))
    for a in default_agreements() if agreements is None else agreements:
        (root / "agreements" / f"{a['id']}.yaml").write_text(yaml.safe_dump(a, sort_keys=False))
    rs = default_restrictions() if restrictions is None else restrictions
    (root / "restrictions.yaml").write_text(yaml.safe_dump({"restrictions": rs}, sort_keys=False))
    return root


def load(root: Path, **kwargs: Any) -> Policy:
    return Policy.load(write_bundle(root, **kwargs))


def subject(role: str = "child", **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "role": role,
        "nhs_number": CHILD_NHS if role == "child" else PARENT_NHS,
        "given_name": "Amy" if role == "child" else "Dean",
        "family_name": "Hollis",
        "dob": "2019-03-02" if role == "child" else "1990-05-05",
        "address": "12 Canal Street, Tipton",
        "postcode": "DY4 7AA",
    }
    if role == "child":
        base["school_urn"] = "100001"
    base.update(over)
    return base


def event_dict(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": "5b0f6c1e-0d0a-4c1e-9d55-0a7c2b1e0001",
        "type": "police.domestic_incident",
        "sender": "wmp",
        "occurred_at": "2026-11-21T22:40:00Z",
        "reference": "WMP/26/112233",
        "need_level": 3,
        "child_present": True,
        "summary": "Altercation between adults.",
        "child_voice": "Hid under the bed.",
        "categories": ["domestic_abuse"],
        "service": None,
        "location": "Family home",
        "safeguarding": {"concern": False, "justification": None},
        "subjects": [subject("child"), subject("parent")],
    }
    base.update(over)
    return base


def event(**over: Any) -> ContactEvent:
    return parse_event(event_dict(**over), now=AT)


def consent(
    nhs: str = CHILD_NHS,
    state: str = "given",
    *,
    purposes: list[str] | None = None,
    recipients: list[str] | None = None,
    recorded_at: str = "2026-10-01T09:00:00Z",
    **over: Any,
) -> ConsentRecord:
    body: dict[str, Any] = {
        "subject": {"nhs_number": nhs},
        "state": state,
        "purposes": purposes or ["early_help"],
        "recipients": recipients or ["kind:hub"],
        "recorded_by": "coord",
        "recorded_at": recorded_at,
    }
    body.update(over)
    return parse_consents([body], now=None)[0]


def by_recipient(decisions: list[Any]) -> dict[str, Any]:
    return {d.recipient: d for d in decisions}


# -- CEL as the engine evaluated it before narrowing and memoising: an oracle for both ----------


def _age(dob: Any, at: datetime) -> int | None:
    if dob is None:
        return None
    today = at.astimezone(UTC).date()
    return max(0, int(today.year - dob.year - ((today.month, today.day) < (dob.month, dob.day))))


def cel_whole_event(ev: ContactEvent, at: datetime) -> dict[str, Any]:
    """The whole event as a CEL condition may see it (docs/policy-language.md)."""
    return {
        "type": ev.type,
        "sender": ev.sender,
        "occurred_at": ev.occurred_at,
        "reference": ev.reference,
        "need_level": ev.need_level,
        "child_present": ev.child_present,
        "summary": ev.summary,
        "child_voice": ev.child_voice,
        "categories": list(ev.categories),
        "service": ev.service,
        "location": ev.location,
        "safeguarding": {  # as the override judges it: unreadable is no justification
            "concern": ev.safeguarding.justified,
            "justification": ev.safeguarding.readable_justification,
        },
        "subjects": [
            {
                "role": s.role,
                "age": _age(s.dob, at),
                "school_urn": s.school_urn,
                "postcode_district": postcode_district(s.postcode) if s.postcode else None,
                "has_nhs_number": s.nhs_number is not None,
            }
            for s in ev.subjects
        ],
    }


def cel_oracle(cond: Condition, act: EventActivation, recipient: Any) -> bool | None:
    """What ``cond.evaluate`` must answer: its program on the whole event, with no memo and
    a failure as None. Written as ``Condition.evaluate`` so that a test may stand it in."""
    try:
        value = cond.program.execute(
            {"event": cel_whole_event(act.event, act.at), "recipient": dict(recipient or {})}
        )
    except Exception:  # noqa: BLE001  # any CEL failure is "could not decide", as in _cel
        return None
    return value if isinstance(value, bool) else None
