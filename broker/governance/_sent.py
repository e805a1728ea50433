"""What a disclosure log says was sent, in words a family can read: each field as it travelled
(a transformed field under what it became, never as the original), and the notes said once
per answer.

A SAR answer is sent to the family: ``subject.nhs_number`` on a line whose decision
pseudonymised it would say the child's NHS number went where only a pseudonym did. The
transform kinds are the policy language's (``broker.policy.TRANSFORMS``, docs/policy-language.md),
as ``redact`` applies them; a kind with no words here is named by its id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final

__all__ = [
    "ALWAYS_SENT",
    "TRANSFORM_WORDS",
    "answer_notes",
    "field_sent_as",
]

# The fields a transform may apply to (TRANSFORM_TARGETS), in words.
_FIELD_WORDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "subject.name": "name",
        "subject.dob": "date of birth",
        "subject.nhs_number": "NHS number",
        "subject.address": "address",
        "subject.postcode": "postcode",
        "subject.school_urn": "school",
        "event.reference": "the sender's reference",
        "event.location": "location",
    }
)

# What each of the policy language's transform kinds leaves of a field (broker/policy/_redact.py).
TRANSFORM_WORDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "age_band": "age band only",
        "year_of_birth": "year only",
        "postcode_district": "district only",
        "initials": "initials only",
        "pseudonym": "as a pseudonym",
    }
)

# What travels with every shared record whatever the agreement shares (broker/policy/_redact.py,
# docs/policy-language.md "Clause keys": ``share``).
ALWAYS_SENT: Final = (
    "Every record shared also carried, whatever the agreement shares: its event id, the kind"
    " of event, the organisation that sent it and when it happened, and on what basis it was"
    " shared (agreement, clauses, purpose, lawful basis). A field listed with a note in"
    " brackets was sent only in that reduced form, never as the original."
)


def field_sent_as(path: str, kind: str | None) -> str:
    """``path`` as it was sent: as is when ``kind`` is None, else in words, e.g.
    ``NHS number (as a pseudonym)``; a kind with no words is named by its id."""
    if kind is None:
        return path
    field = _FIELD_WORDS.get(path, path)
    words = TRANSFORM_WORDS.get(kind)
    return f"{field} ({words})" if words else f"{field} (transformed: {kind})"


def answer_notes(lines: Iterable[object]) -> list[str]:
    """The notes a disclosure log says once: what travels with every shared record (when it
    lists a share, a delivery or an opening)."""
    shared = any(
        getattr(line, "kind", None) in ("delivered", "opened")
        or getattr(line, "outcome", None) in ("shared", "shared_override")
        for line in lines
    )
    return [ALWAYS_SENT] if shared else []
