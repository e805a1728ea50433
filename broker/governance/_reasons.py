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
        # A decision's reasons (docs/policy-language.md §7), most serious first.
        "party-inactive": (
            "The organisation sending, receiving or recording it was suspended at the time."
        ),
        "suppressed": (
            'A "withhold all" rule applies: this kind of organisation is never sent this'
            " kind of information."
        ),
        "consent-withdrawn": (
            "The child's latest consent for this purpose and organisation was withdrawn."
        ),
        "consent-refused": (
            "The child's latest consent for this purpose and organisation was refused."
        ),
        "consent-missing": (
            "The sharing agreement needs consent, and it had not been given for this purpose"
            " and organisation."
        ),
        "condition-false": (
            "The sharing agreement applies only in certain circumstances (for example how"
            " serious the need is, or where the family lives), and these were not met."
        ),
        "agreement-inactive": (
            "The sharing agreement that could have allowed it was suspended, or not in force"
            " on that date."
        ),
        "no-agreement": "No sharing agreement allows this information to go to this organisation.",
        "recipient-key-unavailable": (
            "The organisation had no working encryption key, so nothing could be sent to it"
            " securely."
        ),
        # An event that went to no one (docs/governance.md).
        "quarantined": (
            "Processing the information failed, so none of it was sent to anyone; it is held"
            " for the information governance officers."
        ),
        "no-recipient": (
            "No sharing agreement sends this kind of information from this sender to anyone"
            " for this child, so nothing about them was sent."
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
