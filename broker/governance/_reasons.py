"""What each reason code in a disclosure log means, in plain English.

A log line says why something was not shared (or a consent record counted for nothing, or a
notice did not go) by a code such as ``condition-false``. The console's pages and the HTML
log a family receives explain the codes they show from this one table, so the two never
word a code differently. The meanings follow docs/policy-language.md §5 and §7 and
docs/governance.md (*Subject access requests*).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final

__all__ = ["REASON_MEANINGS", "reason_legend"]

REASON_MEANINGS: Final[Mapping[str, str]] = MappingProxyType(
    {
        # A decision's reasons (docs/policy-language.md §7), most serious first. A decision
        # covers every child the information named, not only the one whose log this is: the
        # consent reasons say so rather than blame this child's own consent.
        "party-inactive": (
            "An organisation involved (the one sending or receiving it, or the one that"
            " recorded a consent) was suspended when this was decided."
        ),
        "suppressed": (
            'A "withhold all" rule applied: in these circumstances this kind of organisation'
            " is sent none of this kind of information."
        ),
        "consent-withdrawn": (
            "For a child the information was about (this child or another named in it), the"
            " latest consent recorded for this purpose and organisation was a withdrawal."
        ),
        "consent-refused": (
            "For a child the information was about (this child or another named in it), the"
            " latest consent recorded for this purpose and organisation was a refusal."
        ),
        "consent-missing": (
            "The sharing agreement needs consent for this purpose and organisation, and not"
            " every child the information was about (this child or another named in it) had"
            " given it."
        ),
        "condition-false": (
            "The sharing agreement applies only in certain circumstances (for example how"
            " serious the need is, or where the family lives), and these were not met."
        ),
        "agreement-inactive": (
            "The sharing agreement that could have allowed it was suspended, or not in force"
            " on that date."
        ),
        "no-agreement": "No sharing agreement applied to sending this to this organisation.",
        "recipient-key-unavailable": (
            "The rules would have allowed it, but the organisation had no working encryption"
            " key, so nothing was sent to it."
        ),
        # An event that went to no one (docs/governance.md).
        "quarantined": (
            "Processing the information failed, so none of it was sent to anyone; it is held"
            " for the information governance officers."
        ),
        "no-recipient": (
            "Nothing in this information about this child was sent to anyone. The log does"
            " not say more about why."
        ),
        # A consent record refused (docs/policy-language.md §5).
        "not-a-consent-authority": (
            "The organisation that sent this consent record may not record consent, so it"
            " counts for nothing."
        ),
        "outside-authority": (
            "The consent record covers purposes or organisations its sender may not record"
            " consent for, so it counts for nothing."
        ),
    }
)


def reason_legend(reasons: Iterable[str | None]) -> list[tuple[str, str]]:
    """The codes among ``reasons`` that have a meaning, each once, with it, in the table's
    order (a code with none, or no reason, is left out)."""
    shown = set(reasons)
    return [(code, text) for code, text in REASON_MEANINGS.items() if code in shown]
