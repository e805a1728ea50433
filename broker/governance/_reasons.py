"""What each reason code in a disclosure log means, in plain English.

A log line says why something was not shared (or a consent record counted for nothing, or a
notice did not go) by a code such as ``condition-false``. The console's pages and the HTML
log a family receives explain the codes they show from these tables, so the two never word a
code differently. The meanings follow docs/policy-language.md §5 and §7 and
docs/governance.md (*Subject access requests*).

A code means what its line's kind makes it mean: ``recipient-key-unavailable`` on a decision
is a share the rules allowed that went nowhere, on a withdrawal notice a notice that did not
go to a past recipient (no rules decide a notice, and that recipient had the data already);
``party-inactive`` on a decision names its sender or recipient, on a refused consent record
the organisation that recorded it (a consent record goes to no one and is not decided).
So each kind of line has its table: ``REASON_MEANINGS`` (decisions, and events that went to
no one), ``CONSENT_MEANINGS`` (refused consent records), ``FILED_CONSENT_MEANINGS`` (a withdrawal
filed with words ignored), ``NOTICE_MEANINGS`` (withdrawal notices).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final, Protocol, runtime_checkable

__all__ = [
    "CONSENT_MEANINGS",
    "FILED_CONSENT_MEANINGS",
    "NOTICE_MEANINGS",
    "REASON_MEANINGS",
    "LegendLine",
    "reason_legend",
]

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
    }
)


# What a code means on a refused consent record's line (``consent_refused``: every
# ``ConsentRefusal`` of broker/policy/_authority.py, docs/policy-language.md §5). The record
# counts for nothing; nothing was sent or decided.
CONSENT_MEANINGS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "not-a-consent-authority": (
            "The organisation that sent this consent record may not record consent, so it"
            " counts for nothing."
        ),
        "party-inactive": (
            "The organisation that recorded this consent was suspended, so the record counts"
            " for nothing."
        ),
        "unknown-purpose": (
            "The consent record names a purpose the sharing agreements do not have (often a"
            " spelling mistake), so it counts for nothing: it must be sent again, correctly."
        ),
        "unknown-recipient": (
            "The consent record names an organisation, or a kind of organisation, that the"
            " sharing agreements do not know (often a spelling mistake), so it counts for"
            " nothing: it must be sent again, correctly."
        ),
        "outside-authority": (
            "The consent record covers purposes or organisations its sender may not record"
            " consent for, so it counts for nothing."
        ),
    }
)


# What a code means on a filed consent record's line (``consent``): only a withdrawal filed
# with words the agreements do not have, ignored (broker/pipeline/_consent.py) has one.
FILED_CONSENT_MEANINGS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "unknown-purpose": (
            "Part of this withdrawal named a purpose the sharing agreements do not have (often"
            " a spelling mistake): that part was ignored, and the purposes and organisations"
            " shown on the line were withdrawn at once. Anything meant by the ignored part"
            " must be sent again, correctly."
        ),
        "unknown-recipient": (
            "Part of this withdrawal named an organisation, or a kind of organisation, the"
            " sharing agreements do not know (often a spelling mistake): that part was"
            " ignored, and the purposes and organisations shown on the line were withdrawn at"
            " once. Anything meant by the ignored part must be sent again, correctly."
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


@runtime_checkable
class LegendLine(Protocol):
    """A disclosure-log line as the legend reads it: its ``kind`` (``decision``,
    ``consent_refused``, ``withdrawal_notice``, …) and its ``reason`` code, if any. A
    :class:`~broker.governance.DisclosureEntry` is one."""

    @property
    def kind(self) -> str: ...
    @property
    def reason(self) -> str | None: ...


# The legend's tables in its order, and which one (by index) explains a line's code by the
# line's kind; any other kind's, REASON_MEANINGS.
_TABLES = (REASON_MEANINGS, CONSENT_MEANINGS, FILED_CONSENT_MEANINGS, NOTICE_MEANINGS)
_TABLE_OF_KIND: Final[Mapping[str, int]] = MappingProxyType(
    {"consent_refused": 1, "consent": 2, "withdrawal_notice": 3}
)


def reason_legend(lines: Iterable[LegendLine]) -> list[tuple[str, str]]:
    """The codes the log ``lines`` show that have a meaning, with it: each once per meaning
    (a code meaning one thing on a decision and another on a consent record or a notice is
    listed once for each shown), decisions' first, then consent records', then notices', each
    in its table's order; a code with none, or no reason, is left out.

    ``lines`` are log lines (:class:`LegendLine`), not bare codes: a code alone does not say
    what it means (raises TypeError), since the same code means different things on
    different kinds of line.
    """
    shown: set[tuple[int, str]] = set()
    for line in lines:
        if not isinstance(line, LegendLine):
            raise TypeError(
                "reason_legend takes disclosure-log lines (with .kind and .reason), "
                f"not {type(line).__name__}: a reason code's meaning depends on its line's kind"
            )
        if line.reason:
            shown.add((_TABLE_OF_KIND.get(line.kind, 0), line.reason))
    return [
        (code, text)
        for n, table in enumerate(_TABLES)
        for code, text in table.items()
        if (n, code) in shown
    ]
