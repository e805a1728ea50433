"""Who may record consent, and for what (docs/policy-language.md §5, "Who may record consent").

A consent record counts only if the party that recorded it is a consent authority of the
bundle, is active, and stayed within its authority: every purpose of the record covered
(``"*"`` in the authority covers any; a record's ``"*"`` needs ``"*"``), and every recipient
entry covered (``"*"`` covers any; ``kind:K`` covers ``kind:K`` and every party of kind K; a
party id covers itself). Otherwise the whole record is refused and counts for no decision.
Without ``consent-authorities.yaml``, active co-ordinating teams may record any consent.

On arrival (``refusal_on_arrival``) a record must also speak the bundle's words: every
purpose one a clause has, every ``kind:K`` a kind of party, every party id a party of the
bundle. A misspelt one (``school-health``, ``kind:hubs``) would cover nothing, so a
withdrawal naming it would stop nothing and say nothing. That check is made once, by the
bundle in force when the record arrives, never again at decisions: a later bundle that drops
a purpose must not make a withdrawal already on file count for nothing.

A withdrawal is the exception: refusing it whole for one misspelt word would keep sharing
what the family did withdraw, in words the bundle knows. So a withdrawal is filed for the
purposes and recipients the bundle knows (``filed_on_arrival``) and the others are reported
as ignored (``ignored_on_arrival``); only one naming no purpose, or no recipient, the bundle
knows is refused (it would withdraw nothing). A grant or a refusal is still refused whole.
"""

from __future__ import annotations

from typing import Final, Literal

from broker._words import closest
from broker.events import ConsentRecord
from broker.policy._model import PARTY_KINDS, Bundle, ConsentAuthority

__all__ = [
    "ConsentRefusal",
    "consent_refusal",
    "filed_on_arrival",
    "ignored_on_arrival",
    "refusal_on_arrival",
    "refusal_words",
]

ConsentRefusal = Literal[
    "not-a-consent-authority",
    "party-inactive",
    "unknown-purpose",
    "unknown-recipient",
    "outside-authority",
]

_ANYTHING: Final = ConsentAuthority(purposes=("*",), recipients=("*",))


def _rights(bundle: Bundle, party: str) -> ConsentAuthority | None:
    if bundle.consent_authorities is not None:
        return bundle.consent_authorities.get(party)
    known = bundle.parties.get(party)
    return _ANYTHING if known is not None and known.kind == "coordinating_team" else None


def _purpose_covered(purpose: str, allowed: tuple[str, ...]) -> bool:
    return "*" in allowed or (purpose != "*" and purpose in allowed)


def _recipient_covered(bundle: Bundle, entry: str, allowed: tuple[str, ...]) -> bool:
    if "*" in allowed or entry in allowed:  # a party id covers itself, kind:K covers kind:K
        return True
    if entry == "*" or entry.startswith("kind:"):
        return False
    party = bundle.parties.get(entry)
    return party is not None and f"kind:{party.kind}" in allowed


def consent_refusal(bundle: Bundle, record: ConsentRecord) -> ConsentRefusal | None:
    """Why ``record`` does not count under ``bundle``, or None when it does."""
    party = bundle.parties.get(record.recorded_by)
    rights = _rights(bundle, record.recorded_by)
    if party is None or rights is None:
        return "not-a-consent-authority"
    if party.status != "active":
        return "party-inactive"
    if not all(_purpose_covered(p, rights.purposes) for p in record.purposes):
        return "outside-authority"
    if not all(_recipient_covered(bundle, r, rights.recipients) for r in record.recipients):
        return "outside-authority"
    return None


def _purposes(bundle: Bundle) -> list[str]:
    # Drafts and suspended agreements count, as for consent-authorities.yaml: a purpose
    # they name is a real word, and a withdrawal for it must be filed for when they return.
    return sorted({c.purpose for a in bundle.agreements for c in a.clauses})


def _is_known(bundle: Bundle, purposes: list[str], entry: str, *, purpose: bool) -> bool:
    if entry == "*":
        return True
    if purpose:
        return entry in purposes
    if entry.startswith("kind:"):
        return entry.removeprefix("kind:") in PARTY_KINDS
    return entry in bundle.parties


def _unknown(bundle: Bundle, record: ConsentRecord) -> tuple[tuple[ConsentRefusal, str], ...]:
    """Every purpose and recipient entry of ``record`` that ``bundle`` has no word for, in
    the record's order (purposes first)."""
    purposes = _purposes(bundle)
    return tuple(
        [("unknown-purpose", p) for p in record.purposes
         if not _is_known(bundle, purposes, p, purpose=True)]
        + [("unknown-recipient", r) for r in record.recipients
           if not _is_known(bundle, purposes, r, purpose=False)]
    )  # fmt: skip


def _known_part(bundle: Bundle, record: ConsentRecord) -> ConsentRecord | None:
    """A withdrawal cut down to the words ``bundle`` knows; None for any other record, and
    for a withdrawal left with no purpose or no recipient (it would withdraw nothing)."""
    if record.state != "withdrawn":
        return None
    purposes = _purposes(bundle)
    kept_p = tuple(p for p in record.purposes if _is_known(bundle, purposes, p, purpose=True))
    kept_r = tuple(r for r in record.recipients if _is_known(bundle, purposes, r, purpose=False))
    if not kept_p or not kept_r:
        return None
    return record.model_copy(update={"purposes": kept_p, "recipients": kept_r})


def refusal_on_arrival(
    bundle: Bundle, record: ConsentRecord
) -> tuple[ConsentRefusal, str | None] | None:
    """Why the worker refuses ``record`` as it arrives under ``bundle``, and the purpose,
    ``kind:K`` or party id it does not know (a vocabulary word or a party id, never anything
    about the person); None when it files it.

    A sender that may not record consent at all is told so first; a misspelt word before
    ``outside-authority``, which it would otherwise be reported as, less usefully. A
    withdrawal with a word the bundle knows for its purposes and for its recipients is not
    refused for the others: its known part is filed, if within the sender's authority.
    """
    refusal = consent_refusal(bundle, record)
    if refusal in ("not-a-consent-authority", "party-inactive"):
        return refusal, None
    if unknown := _unknown(bundle, record):
        if (part := _known_part(bundle, record)) is None:
            return unknown[0]
        refusal = consent_refusal(bundle, part)
    return None if refusal is None else (refusal, None)


def ignored_on_arrival(
    bundle: Bundle, record: ConsentRecord
) -> tuple[tuple[ConsentRefusal, str], ...]:
    """The words (reason, term) the worker ignores of a withdrawal it files under
    ``bundle``; () for every record it files whole, or refuses."""
    if refusal_on_arrival(bundle, record) is not None:
        return ()
    return _unknown(bundle, record)


def filed_on_arrival(bundle: Bundle, record: ConsentRecord) -> ConsentRecord:
    """``record`` as the worker files it under ``bundle`` (it does not refuse it): a
    withdrawal with words ignored, without them; any other, as it came."""
    if ignored_on_arrival(bundle, record):
        part = _known_part(bundle, record)
        assert part is not None  # noqa: S101  # not refused, so something is known
        return part
    return record


def refusal_words(bundle: Bundle, reason: str, term: str | None) -> str:
    """``reason`` for a person: for an unknown word, which one, and the words that exist."""
    if term is None:
        return reason
    if reason == "unknown-purpose":
        purposes = _purposes(bundle)
        close = closest(term, purposes)
        hint = f"did you mean {close!r}?" if close else ", ".join(purposes) or "none"
        return f"{reason}: purpose {term!r} is not one of the bundle's purposes: {hint}"
    if term.startswith("kind:"):
        kinds = [f"kind:{k}" for k in PARTY_KINDS]
        close = closest(term, kinds)
        hint = f"did you mean {close!r}?" if close else ", ".join(kinds)
        return f"{reason}: recipient {term!r} is not a kind of party: {hint}"
    close = closest(term, bundle.parties)
    hint = f"; did you mean {close!r}?" if close else ""
    return f"{reason}: recipient {term!r} is not a party of the bundle{hint}"
