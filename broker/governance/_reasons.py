"""What each reason code in a disclosure log means, in plain English.

A log line says why something was not shared (or a consent record counted for nothing, or a
notice did not go) by a code such as ``condition-false``. The console's pages and the HTML
log a family receives explain the codes they show from these tables, so the two never word a
code differently. The meanings follow docs/policy-language.md §5 and §7 and
docs/governance.md (*Subject access requests*).

A code means what its line's kind makes it mean: ``recipient-key-unavailable`` on a decision
is a share the rules allowed that went nowhere, on a withdrawal notice a notice that did not
go to a past recipient (no rules decide a notice, and that recipient had the data already).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final, Protocol

__all__ = ["NOTICE_MEANINGS", "REASON_MEANINGS", "reason_legend"]

REASON_MEANINGS: Final[Mapping[str, str]] = MappingProxyType(
    {
        # A decision's reasons (docs/policy-language.md §7), most serious first. A decision
        # covers every child the information named, not only the one whose log this is: the
        # consent reasons say so rather than blame this child's own consent.
        "party-inactive": (
            "The organisation sending it or the one it would have gone to was suspended"
            " when this was decided."
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
            "Processing the information failed, so none of it was sent to anyone. The"
            " failure is recorded for the information governance officers to look into."
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


# What a code means on a withdrawal notice's line (``undelivered``, broker/pipeline/_consent.py).
NOTICE_MEANINGS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "recipient-key-unavailable": (
            "On a withdrawal notice: the organisation had been sent this child's information"
            " before, but had no working encryption key when consent was withdrawn, so the"
            " notice telling it to stop using that information was not sent. It must be told"
            " by other means."
        ),
    }
)


class _Line(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def reason(self) -> str | None: ...


def reason_legend(lines: Iterable[_Line]) -> list[tuple[str, str]]:
    """The codes the log ``lines`` show that have a meaning, with it: each once per meaning
    (a code meaning one thing on a decision and another on a notice is listed twice if both
    are shown), in the tables' order; a code with none, or no reason, is left out."""
    shown = {(line.kind == "withdrawal_notice", line.reason) for line in lines}
    legend = [(c, t) for c, t in REASON_MEANINGS.items() if (False, c) in shown]
    return legend + [(c, t) for c, t in NOTICE_MEANINGS.items() if (True, c) in shown]
