"""How the desk's pages show what they hold: every field of a delivered view, the basis it was
shared on, and times in the local zone.

A view holds exactly what the agreement grants, under the names redaction gives
(broker.policy._redact): plain fields under their own key, generalised ones under the
transform's (``age_band``, ``postcode_district``, ``initials``, ``<key>_pseudonym``…). Every
key is shown: those known with a label, any other (a field a later agreement or broker adds)
under its own name, so nothing the party received is stored yet never seen. Jinja escapes
every value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from broker.desk._stored import StoredRecord
from broker.policy import basis_words

__all__ = [
    "Field",
    "Shown",
    "basis_text",
    "event_words",
    "local_time",
    "person_name",
    "view_fields",
    "window_text",
]

#: Event fields, in the order a page shows them (after what, from and when).
_EVENT_LABELS = {
    "reference": "Reference",
    "need_level": "Need level",
    "outcome": "Outcome",
    "categories": "Categories",
    "summary": "Summary",
    "child_voice": "Child's voice",
    "child_present": "Child present",
    "location": "Location",
    "service": "Service",
}
#: Subject fields, in the order a person's line shows them.
_SUBJECT_LABELS = {
    "given_name": "given name",
    "family_name": "family name",
    "name": "name",
    "initials": "initials",
    "dob": "born",
    "year_of_birth": "born in",
    "age_band": "aged",
    "nhs_number": "NHS number",
    "postcode": "postcode",
    "postcode_district": "postcode district",
    "address": "address",
    "school_urn": "school URN",
}
#: Shown elsewhere on the page (what, from, when; the people; the basis), or the role that
#: heads a person's line.
_EVENT_SHOWN = {"event_id", "type", "sender", "occurred_at", "subjects", "sharing"}
_NAME_PARTS = ("given_name", "family_name")
_HUMANISED = {"categories", "outcome"}  # codes such as domestic_abuse, support_offered
#: Every event type (broker.events.EVENT_TYPES) in a reader's words, for a school's pages;
#: a type with none (one a later Accord adds) is shown as it is.
_EVENT_WORDS = {
    "police.domestic_incident": "Domestic abuse incident (police)",
    "police.missing_episode": "Missing episode (police)",
    "police.child_concern": "Concern about a child (police)",
    "health.ae_attendance": "A&E attendance (health)",
    "health.health_visitor_concern": "Health visitor's concern (health)",
    "health.midwife_concern": "Midwife's concern (health)",
    "health.gp_concern": "GP's concern (health)",
    "education.attendance_concern": "Attendance concern (education)",
    "education.exclusion": "Exclusion (education)",
    "education.welfare_concern": "Welfare concern (education)",
    "housing.eviction_risk": "Risk of eviction (housing)",
    "social_care.contact": "Contact (social care)",
    "voluntary.concern": "Concern (voluntary sector)",
    "coordination.referral": "Referral (early help)",
    "coordination.referral_outcome": "Outcome of a referral (early help)",
}


@dataclass(frozen=True, slots=True)
class Field:
    key: str  # the view's own key: pages and tests find a field by it
    label: str
    text: str


@dataclass(frozen=True, slots=True)
class Shown:
    """A record's view as a page shows it: its event fields, and one line per person."""

    fields: tuple[Field, ...]
    people: tuple[tuple[str, tuple[Field, ...]], ...]  # (role, that person's fields)


def _text(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        text = ", ".join(_text(key, v) for v in value)
    elif isinstance(value, str | int | float):
        text = str(value)
    else:  # a structure no page knows yet: shown whole rather than not at all
        text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text.replace("_", " ") if key in _HUMANISED else text


def _label(key: str, labels: Mapping[str, str]) -> str:
    if key in labels:
        return labels[key]
    base = key.removesuffix("_pseudonym")
    if base != key:
        return f"{labels.get(base, base.replace('_', ' '))} (pseudonym)"
    return key.replace("_", " ")


def _fields(
    data: Mapping[str, Any], labels: Mapping[str, str], skip: set[str]
) -> tuple[Field, ...]:
    """Known keys first in their order, then the rest in the view's; a key with no value
    (None: the event did not hold it) shows nothing."""
    known = [k for k in labels if k in data]
    pseudonyms = [f"{k}_pseudonym" for k in labels if f"{k}_pseudonym" in data]
    rest = [k for k in data if k not in labels and k not in pseudonyms and k not in skip]
    return tuple(
        Field(key, _label(key, labels), _text(key, data[key]))
        for key in (*known, *pseudonyms, *rest)
        if data[key] is not None and data[key] != []
    )


def view_fields(record: StoredRecord) -> Shown:
    view = record.view
    people = []
    for subject in view.get("subjects") or ():
        if isinstance(subject, Mapping):
            role = subject.get("role")
            fields = _fields(subject, _SUBJECT_LABELS, {"role"})
            # Given and family name read as one name, as a person writes it.
            names = [f.text for f in fields if f.key in _NAME_PARTS]
            rest = tuple(f for f in fields if f.key not in _NAME_PARTS)
            if names:
                rest = (Field("name", "", " ".join(names)), *rest)
            people.append((str(role) if role else "subject", rest))
        else:
            people.append(("subject", (Field("subject", "person", _text("", subject)),)))
    return Shown(_fields(view, _EVENT_LABELS, _EVENT_SHOWN), tuple(people))


def person_name(subject: Mapping[str, Any]) -> str | None:
    """A person as a heading names them: given and family name as written, else what the
    view shares of a name (a name, initials); None without any."""
    parts = [subject.get(k) for k in _NAME_PARTS]
    named = " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
    for found in (named, subject.get("name"), subject.get("initials")):
        if isinstance(found, str) and found.strip():
            return found.strip()
    return None


def event_words(event_type: str) -> str:
    """An event type in a reader's words (``police.domestic_incident``: "Domestic abuse
    incident (police)"); one without any as it is."""
    return _EVENT_WORDS.get(event_type, event_type)


def basis_text(basis: Mapping[str, Any] | None) -> str:
    """``{"article6": "public_task", …}`` in the words every page and report uses."""
    return basis_words(basis) or "not given"


def local_time(value: datetime | str | None, zone: ZoneInfo) -> str:
    """To the minute, in ``zone`` (Europe/London: GMT or BST as the day has it)."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return value  # not a time after all: shown as sent
    else:
        when = value
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def window_text(seconds: int | None) -> str:
    """A rule's window as its ``flags.yaml`` gives it (``Nd`` or ``Nh``)."""
    if seconds is None:
        return "not recorded (stored by a desk older than 2026-12-06)"
    if seconds % 86400 == 0:
        days = seconds // 86400
        return f"{days} day{'s' if days != 1 else ''}"
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{seconds} seconds"
