"""What a record's page says the desk was not given: the fields of a contact event this record
does not include, in plain words, those included for some of its people only, and those given
only in part (an age band for a date of birth), so that nobody reads a short record as all the
sender knew.

Never *why*: an agreement's clauses or a restriction (a refuge's address goes to nobody) may
have left a field out, and a delivery does not say which: it carries its view, clauses and
agreements, but neither the decision's field lists (``fields_shared``, ``fields_withheld``)
nor the restrictions applied (the audit log has those). Naming the agreement beside a field a
restriction held back would send a caseworker to ask the sender for what the rule keeps from
her. So the page names no agreement there, and says the decisions are in the audit log.

The view says what was given: redaction writes a key for every field the decision shares,
under the transform's name when generalised, and with no value when the record held none
(broker.policy._redact), so a field with no key in the view was not shared, whatever the
record held; a key with no value was shared, though empty. With per-person scopes
(broker.policy._decide._scopes) each person's entry holds only their own fields, so a subject
field is read person by person. Withheld values are never in a delivery, so none can be shown.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
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
    """``fields``: not included for anyone; ``some_only``: included for some of the record's
    people only (``address (child only)`` where the view gives roles; ``date of birth (age
    band only, child only)`` when theirs is generalised too); ``in_part``: given
    generalised only (``date of birth (age band only)``, ``date of birth (age band only for
    parent)``)."""

    fields: tuple[str, ...]
    some_only: tuple[str, ...]
    in_part: tuple[str, ...]


def _words(path: str) -> str:
    return _WORDS.get(path, path)


def _keys(path: str) -> tuple[tuple[str, ...], Mapping[str, str]]:
    if path in _SUBJECT_KEYS:
        return _SUBJECT_KEYS[path]
    key = path.split(".", 1)[1]
    return (key,), {f"{key}_pseudonym": "a pseudonym only"}


def _held(path: str, holders: Sequence[Mapping[str, Any]]) -> list[str | None]:
    """Per holder (a person, or the event): "" given as it is, the generalisation's words
    when given only in part, None when not given."""
    plain, generalised = _keys(path)
    out: list[str | None] = []
    for h in holders:
        if any(k in h for k in plain):
            out.append("")
        else:
            out.append(next((said for k, said in generalised.items() if k in h), None))
    return out


def _roles(
    subjects: Sequence[Mapping[str, Any]], got: Sequence[str | None], which: Collection[str | None]
) -> str | None:
    """The roles of the people whose ``got`` is in ``which`` (``child and parent``), when the
    view gives everyone's role and no one else has one of them; else None (then "some
    people": a role shared by someone given it and someone not names neither)."""
    roles = [s.get("role") for s in subjects]
    if not all(isinstance(r, str) and r for r in roles):
        return None
    these = {str(r) for r, g in zip(roles, got, strict=True) if g in which}
    others = {str(r) for r, g in zip(roles, got, strict=True) if g not in which}
    if these & others:
        return None
    return " and ".join(r.replace("_", " ") for r in dict.fromkeys(str(r) for r in roles)
                        if r in these)  # fmt: skip


def _reduced(subjects: Sequence[Mapping[str, Any]], got: Sequence[str | None]) -> str:
    """The generalisations' words (``age band only``), and for whom when someone else has
    the field as it is (``age band only for parent``)."""
    kinds = " or ".join(dict.fromkeys(g for g in got if g))
    if "" in got:  # others as it is: say for whom it is only in part
        roles = _roles(subjects, got, {g for g in got if g})
        kinds += f" for {roles}" if roles else " for some people"
    return kinds


def not_shared(record: StoredRecord) -> NotShared | None:
    """What ``record`` does not give this desk; None for a hidden record (its content is not
    shown) or one that gives every field to everyone in it."""
    if record.hidden:
        return None
    view = record.view
    people: Sequence[Any] = view.get("subjects") or ()
    subjects = [s for s in people if isinstance(s, Mapping)]
    fields: list[str] = []
    some_only: list[str] = []
    in_part: list[str] = []
    for path in FIELD_PATHS:
        if path in _ALWAYS or (path == "event.outcome" and record.event_type != OUTCOME_TYPE):
            continue  # an outcome is only ever a referral outcome's: never missed elsewhere
        person = path.startswith("subject.")
        got = _held(path, subjects if person else [view])
        if all(g is None for g in got):  # none at all, or no person in the view
            fields.append(_words(path))
        elif None in got:  # some people's entries hold it, others' do not
            given = {g for g in got if g is not None}
            roles = _roles(subjects, got, given) if person else None
            # A reduction keeps its words here too: "date of birth (child only)" alone reads
            # as the child's full date of birth when the view holds only an age band.
            said = [_reduced(subjects, got)] if any(given) else []
            said += [f"{roles} only"] if roles else []
            some_only.append(f"{_words(path)} ({', '.join(said)})" if said else _words(path))
        elif any(got):  # everyone has it, someone only in part
            in_part.append(f"{_words(path)} ({_reduced(subjects, got)})")
    if not fields and not some_only and not in_part:
        return None
    return NotShared(tuple(fields), tuple(some_only), tuple(in_part))
