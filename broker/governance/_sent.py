"""What a disclosure log says was sent, in words a family can read: each field as it travelled
(a transformed field under what it became, never as the original), the consent state with
whether the agreement needed consent, and the notes said once per answer.

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
    "CONSENT_STATE_MEANINGS",
    "TRANSFORM_WORDS",
    "answer_notes",
    "consent_words",
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


# The consent column's states (broker/policy/_decision.py ConsentStateOut), and what "not
# needed" and "overridden" add. Only children's consent is looked up (docs/policy-language.md
# §6 step 5): a parent named in the same information has none that decides.
CONSENT_STATE_MEANINGS: Final[Mapping[str, str]] = MappingProxyType(
    {
        # As REASON_MEANINGS words the consent reasons: a decision covers every child the
        # information named, not only this child.
        "given": (
            "consent for this purpose and organisation was on record as given for every child"
            " the information was about."
        ),
        "refused": (
            "for a child the information was about (this child or another named in it), the"
            " latest consent recorded for this purpose and organisation was a refusal."
        ),
        "withdrawn": (
            "for a child the information was about (this child or another named in it), the"
            " latest consent recorded for this purpose and organisation was a withdrawal."
        ),
        "missing": (
            "consent for this purpose and organisation was not on record for every child the"
            " information was about (this child or another named in it)."
        ),
        "not needed": (
            "the sharing agreement does not rest on consent but on the lawful basis shown: the"
            " consent state did not decide the sharing, and refusing or withdrawing consent"
            " would not have stopped it."
        ),
        "overridden": (
            "the sharing agreement needs consent, but allows sharing without it, even against a"
            " refusal, where the organisation sending it flagged a safeguarding concern and"
            " wrote why; this share was made so, as a safeguarding override, and an information"
            " governance officer reviews every one."
        ),
    }
)
# What a consent rule adds to the state where consent did not decide the share
# (broker/policy/_decision.py ConsentRule).
_NOT_NEEDED: Final = "not needed: the agreement rests on its lawful basis, not consent"
_OVERRIDDEN: Final = (
    "overridden: shared without consent under a safeguarding override, for IG review"
)
_NOT_GIVEN: Final = frozenset({"refused", "withdrawn", "missing"})


_SHARES: Final = frozenset({"shared", "shared_override"})


def field_sent_as(path: str, kind: str | None) -> str:
    """``path`` as it was sent: as is when ``kind`` is None, else in words, e.g.
    ``NHS number (as a pseudonym)``; a kind with no words is named by its id."""
    if kind is None:
        return path
    field = _FIELD_WORDS.get(path, path)
    words = TRANSFORM_WORDS.get(kind)
    return f"{field} ({words})" if words else f"{field} (transformed: {kind})"


def consent_words(state: str | None, rule: str | None, outcome: str | None) -> str | None:
    """A decision's consent state as a reader sees it: ``missing (not needed: ...)`` (any state)
    where the agreement does not rest on consent (``rule`` ``not_required``); ``refused
    (overridden: ...)`` where consent was needed, not given, and a safeguarding override
    shared anyway (``required_unless_safeguarding``, ``shared_override``); the state alone
    otherwise (and for a record without a rule)."""
    if state is None:
        return None
    if rule == "not_required":
        # "given" too: a family must not read it as consent a withdrawal would stop.
        return f"{state} ({_NOT_NEEDED})"
    overridden = rule == "required_unless_safeguarding" and outcome == "shared_override"
    if overridden and state in _NOT_GIVEN:
        return f"{state} ({_OVERRIDDEN})"
    return state


def answer_notes(lines: Iterable[object]) -> list[str]:
    """The notes a disclosure log says once: what travels with every shared record (when it
    lists a share, a delivery or an opening), and what each consent state its decisions show
    means (``missing`` alone reads as sharing without consent, which a share that needed none
    was not)."""
    shared = False
    states: set[str] = set()
    for line in lines:
        kind, outcome = getattr(line, "kind", None), getattr(line, "outcome", None)
        shared = shared or kind in ("delivered", "opened") or outcome in _SHARES
        shown = getattr(line, "shown_consent", None) if kind == "decision" else None
        if isinstance(shown, str) and shown:
            state, _, why = shown.partition(" (")
            states.add(state)
            for note in ("not needed", "overridden"):
                if why.startswith(note):
                    states.add(note)
    notes = [ALWAYS_SENT] if shared else []
    notes += [
        f'Consent "{state}": {text}'
        for state, text in CONSENT_STATE_MEANINGS.items()
        if state in states
    ]
    return notes
