"""What a record's page says was not shared with the desk: the fields of a contact event the
agreement did not give this party, in plain words, and those it gave only in part (an age band
for a date of birth), so that nobody reads a short record as all the sender knew.

A delivery carries its view, its clauses and agreements, but not the decision's field lists
(``fields_shared``, ``fields_withheld``: the audit log has those). The view says the same:
redaction writes a key for every field the decision shares, under the transform's name when
generalised, and with no value when the record held none (broker.policy._redact), so a field
with no key in the view was not shared, whatever the record held; a key with no value was
shared, though empty. Withheld values are never in a delivery, so none can be shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from broker.desk._stored import OUTCOME_TYPE, StoredRecord
from broker.events import FIELD_PATHS

__all__ = ["NotShared", "not_shared"]

#: Every field a policy may share (broker.events.FIELD_PATHS) in a desk's words; a path with
#: none (one a later Accord adds) is shown as it is.
_WORDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "subject.name": "name",
        "subject.dob": "date of birth",
        "subject.nhs_number": "NHS number",
        "subject.address": "address",
        "subject.postcode": "postcode",
        "subject.school_urn": "school",
        "subject.role": "role (child, parent…)",
        "event.reference": "the sender's reference",
        "event.need_level": "need level",
        "event.child_present": "whether the child was present",
        "event.summary": "summary",
        "event.child_voice": "the child's voice",
        "event.categories": "categories",
        "event.location": "location",
        "event.service": "service",
        "event.outcome": "outcome",
    }
)
#: Always travel (the page shows what and when): never "not shared".
_ALWAYS: Final = frozenset({"event.type", "event.occurred_at"})
#: A subject field's keys in the view when shared as it is, and when generalised (with what
#: the generalisation leaves); any other field's key is its path's last part.
_SUBJECT_KEYS: Final[Mapping[str, tuple[tuple[str, ...], Mapping[str, str]]]] = MappingProxyType(
    {
        "subject.name": (
            ("given_name", "family_name", "name"),
            {"initials": "initials only", "name_pseudonym": "a pseudonym only"},
        ),
        "subject.dob": (
            ("dob",),
            {
                "age_band": "age band only",
                "year_of_birth": "year only",
                "dob_pseudonym": "a pseudonym only",
            },
        ),
        "subject.postcode": (
            ("postcode",),
            {"postcode_district": "district only", "postcode_pseudonym": "a pseudonym only"},
        ),
    }
)


@dataclass(frozen=True, slots=True)
class NotShared:
    """``fields``: not shared at all; ``in_part``: shared generalised only (``date of birth
    (age band only)``); ``under``: the agreements and clauses it was shared under."""

    fields: tuple[str, ...]
    in_part: tuple[str, ...]
    under: str


def _words(path: str) -> str:
    return _WORDS.get(path, path)


def _keys(path: str) -> tuple[tuple[str, ...], Mapping[str, str]]:
    if path in _SUBJECT_KEYS:
        return _SUBJECT_KEYS[path]
    key = path.split(".", 1)[1]
    return (key,), {f"{key}_pseudonym": "a pseudonym only"}


def not_shared(record: StoredRecord) -> NotShared | None:
    """What ``record``'s agreement did not give this desk; None for a hidden record (its
    content is not shown) or one whose every field was shared."""
    if record.hidden:
        return None
    view = record.view
    people: Sequence[Any] = view.get("subjects") or ()
    subjects = [s for s in people if isinstance(s, Mapping)]
    fields: list[str] = []
    in_part: list[str] = []
    for path in FIELD_PATHS:
        if path in _ALWAYS or (path == "event.outcome" and record.event_type != OUTCOME_TYPE):
            continue  # an outcome is only ever a referral outcome's: never missed elsewhere
        held = subjects if path.startswith("subject.") else [view]
        plain, generalised = _keys(path)
        if any(k in h for h in held for k in plain):
            continue
        left = [said for k, said in generalised.items() if any(k in h for h in held)]
        if left:
            in_part.append(f"{_words(path)} ({left[0]})")
        else:
            fields.append(_words(path))
    if not fields and not in_part:
        return None
    decision = record.decision
    agreements = ", ".join(str(a) for a in decision.get("agreements") or ())
    clauses = ", ".join(str(c) for c in decision.get("clauses") or ())
    under = f"{agreements} ({clauses})" if agreements and clauses else agreements or clauses
    return NotShared(tuple(fields), tuple(in_part), under or "its agreement")
