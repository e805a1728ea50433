"""Who may record consent, and for what (docs/policy-language.md §5, "Who may record consent").

A consent record counts only if the party that recorded it is a consent authority of the
bundle, is active, and stayed within its authority: every purpose of the record covered
(``"*"`` in the authority covers any; a record's ``"*"`` needs ``"*"``), and every recipient
entry covered (``"*"`` covers any; ``kind:K`` covers ``kind:K`` and every party of kind K; a
party id covers itself). Otherwise the whole record is refused and counts for no decision.
Without ``consent-authorities.yaml``, active co-ordinating teams may record any consent.
"""

from __future__ import annotations

from typing import Final, Literal

from broker.events import ConsentRecord
from broker.policy._model import Bundle, ConsentAuthority

__all__ = ["ConsentRefusal", "consent_refusal"]

ConsentRefusal = Literal["not-a-consent-authority", "party-inactive", "outside-authority"]

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
