"""What the dashboard and the Agreements page say of decisions not to share: how many, why,
and under which agreement; and which agreements have lapsed while still approved.

Read from the rows ``accord audit report`` prints (``AuditStore.decision_counts``: agreement,
recipient, outcome, reason, count), so the console and the report never count differently.
A decision made under several agreements is counted under each, as the report counts it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from broker.governance import REASON_MEANINGS

if TYPE_CHECKING:
    from broker.policy import Policy

__all__ = ["ExpiredAgreement", "ReasonLine", "Refusals", "expired_agreements", "refusals"]

# A row of ``decision_counts``: agreement (None: none), recipient, outcome, reason, count.
Row = tuple[str | None, str, str, str | None, int]

_REFUSED = "not_shared"
# What an expired agreement's refusals are given as (docs/policy-language.md §7).
_INACTIVE = "agreement-inactive"


@dataclass(frozen=True, slots=True)
class ReasonLine:
    """Decisions not to share for one reason: its code, its plain meaning (the disclosure
    log's, ``REASON_MEANINGS``; None for a code it has none for), how many, and how many under
    each agreement (None: decisions citing no agreement), most first."""

    reason: str
    meaning: str | None
    count: int
    by_agreement: tuple[tuple[str | None, int], ...]


@dataclass(frozen=True, slots=True)
class Refusals:
    """The not-shared rows, by reason and by agreement."""

    by_reason: tuple[ReasonLine, ...]
    # agreement (None: none) -> reason -> count
    by_agreement: dict[str | None, dict[str, int]]

    @property
    def listed(self) -> int:
        """The sum of the reasons' counts: more than the decisions not shared when one
        decision was made under several agreements (counted under each)."""
        return sum(line.count for line in self.by_reason)

    def of(self, agreement: str | None) -> int:
        return sum(self.by_agreement.get(agreement, {}).values())


def refusals(rows: Iterable[Row]) -> Refusals:
    per: dict[str | None, dict[str, int]] = {}
    for agreement, _, outcome, reason, n in rows:
        if outcome == _REFUSED:
            reasons = per.setdefault(agreement, {})
            code = reason or "(none given)"
            reasons[code] = reasons.get(code, 0) + n
    codes: dict[str, dict[str | None, int]] = {}
    for agreement, reasons in per.items():
        for code, n in reasons.items():
            codes.setdefault(code, {})[agreement] = n
    lines = [
        ReasonLine(
            reason=code,
            meaning=REASON_MEANINGS.get(code),
            count=sum(by.values()),
            # "no agreement" (None) after the named ones of the same count.
            by_agreement=tuple(sorted(by.items(), key=lambda a: (-a[1], a[0] is None, a[0] or ""))),
        )
        for code, by in codes.items()
    ]
    lines.sort(key=lambda line: (-line.count, line.reason))
    return Refusals(tuple(lines), per)


@dataclass(frozen=True, slots=True)
class ExpiredAgreement:
    """An agreement the bundle still has as approved whose last day has passed: the policy
    engine takes it as not in force, so every decision it could have allowed is refused
    (``agreement-inactive``), while the bundle reads as if it were in force."""

    agreement_id: str
    title: str
    valid_until: date
    # Decisions not shared as agreement-inactive citing it (in the window counted).
    refused: int


def expired_agreements(
    policy: Policy | None, today: date, counted: Refusals
) -> list[ExpiredAgreement]:
    if policy is None:
        return []
    return sorted(
        (
            ExpiredAgreement(
                a.id, a.title, a.valid_until, counted.by_agreement.get(a.id, {}).get(_INACTIVE, 0)
            )
            for a in policy.bundle.agreements
            if a.status == "approved" and a.valid_until < today
        ),
        key=lambda e: (e.valid_until, e.agreement_id),
    )
