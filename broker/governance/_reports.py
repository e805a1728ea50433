"""IG reports over the audit index: pure queries the CLI prints and the console renders.

Each function takes an :class:`AuditStore` (and, where needed, the policy bundle and today's
date) and returns plain frozen dataclasses: no I/O besides the store, no formatting, no
personal values (subject keys, party ids, clause ids and field names only). A child's
disclosure log is ``_disclosure``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from broker.config import SchoolCalendar
from broker.governance._encompass import (
    EncompassNotice,
    UnsentNotice,
    late_encompass_notices,
    unsent_encompass_notices,
)
from broker.governance._grounds import Ground, decision_grounds, str_or_none, str_tuple
from broker.governance._impacts import PolicyImpactRun, policy_impact_runs
from broker.governance._keys_loaded import KeysLoaded, keys_loaded
from broker.governance._review import ReviewStatus
from broker.governance._sent import consent_words, field_sent_as, transforms_of
from broker.governance._store import AuditStore, Window

if TYPE_CHECKING:
    from broker.policy import Policy


# -- the governance report --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DecisionCount:
    agreement_id: str | None
    recipient: str
    outcome: str
    reason: str | None
    count: int


@dataclass(frozen=True, slots=True)
class PendingOverride:
    event_id: str
    recipient: str
    decided_at: datetime
    sender: str | None
    event_type: str | None
    agreement_id: str | None
    clauses: tuple[str, ...]
    grounds: str | None
    # Every agreement (with its clause) the override was made under, the first being
    # ``agreement_id``; and the subjects it is about, for the record of whoever views it.
    agreements: tuple[Ground, ...] = ()
    subject_keys: tuple[str, ...] = ()
    # What it shared, for the officer to judge: consent as it stood (refused or missing), and
    # the fields (each ground in ``agreements`` has its purpose and lawful basis).
    consent: str | None = None
    fields_shared: tuple[str, ...] = ()
    # As on the child's page (DisclosureEntry): each field as sent, the consent with its rule.
    transforms: tuple[tuple[str, str], ...] = ()
    consent_rule: str | None = None

    @property
    def shown_consent(self) -> str | None:
        return consent_words(self.consent, self.consent_rule, "shared_override")

    @property
    def shown_fields(self) -> tuple[str, ...]:
        kinds = dict(self.transforms)
        return tuple(field_sent_as(f, kinds.get(f)) for f in self.fields_shared)


@dataclass(frozen=True, slots=True)
class ReviewedOverride:
    """An override's review: which share, the finding, who, where the reasoning is, when."""

    event_id: str
    recipient: str
    status: ReviewStatus
    decided_at: datetime | None
    sender: str | None
    # The subjects it is about, for the record of whoever views it.
    subject_keys: tuple[str, ...] = ()


def reviewed_overrides(store: AuditStore, window: Window) -> list[ReviewedOverride]:
    """Overrides reviewed in the window (by when the review was written), newest first."""
    out = []
    for r in store.reviews(window):
        decision = store.find_decision(r.event_id, r.party)
        out.append(
            ReviewedOverride(
                event_id=r.event_id,
                recipient=r.party,
                status=ReviewStatus(True, r.finding, r.reviewed_by, r.reference, r.reviewed_at),
                decided_at=decision.at if decision else None,
                sender=decision.data.get("sender") if decision else None,
                subject_keys=decision.subject_keys if decision else (),
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class ExpiringAgreement:
    agreement_id: str
    title: str
    status: str
    valid_until: date
    days_left: int


@dataclass(frozen=True, slots=True)
class RecipientOpenings:
    recipient: str
    delivered: int
    unopened: int


@dataclass(frozen=True, slots=True)
class WithdrawalNoticeLine:
    """A notice the worker owed a past recipient when consent was withdrawn: which
    withdrawal (the consent record's id), to whom, which shares (event ids) it recalls, and,
    when it could not be sent, why (IG officers must then tell the recipient by other means)."""

    at: datetime
    withdrawal_id: str
    recipient: str
    event_ids: tuple[str, ...]
    purposes: tuple[str, ...]
    undelivered: str | None
    # The children it is about, for the record of whoever views it.
    subject_keys: tuple[str, ...] = ()


def withdrawal_notices(store: AuditStore, window: Window) -> list[WithdrawalNoticeLine]:
    """Withdrawal notices logged in the window, oldest first, undelivered or not."""
    return [
        WithdrawalNoticeLine(
            at=rec.at,
            withdrawal_id=rec.event_id or "",
            recipient=rec.party or "",
            event_ids=str_tuple(rec.data.get("event_ids")),
            purposes=str_tuple(rec.data.get("purposes")),
            undelivered=str_or_none(rec.data.get("undelivered")),
            subject_keys=rec.subject_keys,
        )
        for rec in store.withdrawal_notices(window)
    ]


@dataclass(frozen=True, slots=True)
class GovernanceReport:
    since: datetime | None
    until: datetime | None
    decisions: tuple[DecisionCount, ...]
    pending_overrides: tuple[PendingOverride, ...]
    quarantine: tuple[tuple[str, int], ...]
    expiring: tuple[ExpiringAgreement, ...] | None  # None: no policy bundle was given
    deliveries: tuple[RecipientOpenings, ...]
    # Operation Encompass notices decided in the window that were acknowledged late or are
    # still open past their deadline, by school.
    encompass_late: tuple[EncompassNotice, ...] = ()
    # Operation Encompass notices decided in the window and never sent, the school having
    # no usable key: never to be read, by school.
    encompass_unsent: tuple[UnsentNotice, ...] = ()
    # Overrides reviewed in the window, newest first: each finding stays visible.
    reviewed: tuple[ReviewedOverride, ...] = ()
    # Consent withdrawal notices logged in the window, oldest first.
    withdrawals: tuple[WithdrawalNoticeLine, ...] = ()
    # Decisions made in the window, each once: ``decisions`` counts one made under several
    # agreements under each, so its counts can add up to more.
    decisions_total: int = 0
    # Runs of ``accord policy impact`` in the window, newest first: who compared which
    # proposed bundle with the one in force, and what it would change, in counts.
    impacts: tuple[PolicyImpactRun, ...] = ()
    # The workers' key directories in use and each change to them (``keys_loaded``), oldest
    # first: after a keystore theft, when the revocation took hold.
    keys: tuple[KeysLoaded, ...] = ()

    @property
    def undelivered_notices(self) -> tuple[WithdrawalNoticeLine, ...]:
        """Withdrawal notices the worker could not send: each recipient must be told by
        other means."""
        return tuple(n for n in self.withdrawals if n.undelivered)

    @property
    def never_opened(self) -> tuple[RecipientOpenings, ...]:
        """Recipients that received records in the window and opened none of them."""
        return tuple(r for r in self.deliveries if r.delivered and r.unopened == r.delivered)


def pending_overrides(store: AuditStore) -> list[PendingOverride]:
    """Safeguarding overrides not yet reviewed by an IG officer, oldest first."""
    out = []
    for rec in store.pending_overrides():
        d = rec.data
        out.append(
            PendingOverride(
                event_id=rec.event_id or "",
                recipient=rec.party or "",
                decided_at=rec.at,
                sender=d.get("sender"),
                event_type=d.get("event_type"),
                agreement_id=d.get("agreement_id"),
                clauses=str_tuple(d.get("clause_ids")),
                grounds=d.get("override_grounds"),
                agreements=decision_grounds(d),
                subject_keys=rec.subject_keys,
                consent=str_or_none(d.get("consent")),
                fields_shared=str_tuple(d.get("fields_shared")),
                transforms=transforms_of(d.get("transforms")),
                consent_rule=str_or_none(d.get("consent_rule")),
            )
        )
    return out


#: How long a safeguarding override may wait for an IG officer's review before it is overdue
#: (``accord_audit_overrides_overdue``, and the alert on it): three days, so an override
#: made on a Friday is still caught by Monday's review.
OVERRIDE_REVIEW_DEADLINE = timedelta(days=3)


def overdue_overrides(
    store: AuditStore, now: datetime, *, deadline: timedelta = OVERRIDE_REVIEW_DEADLINE
) -> list[PendingOverride]:
    """Overrides still awaiting review ``deadline`` after they were decided, oldest first."""
    cutoff = now - deadline
    return [p for p in pending_overrides(store) if p.decided_at <= cutoff]


def expiring_agreements(
    policy: Policy, today: date, within_days: int = 60
) -> list[ExpiringAgreement]:
    """Approved or suspended agreements whose validity ends within ``within_days`` of today."""
    out = []
    for a in policy.bundle.agreements:
        left = (a.valid_until - today).days
        if a.status != "draft" and 0 <= left <= within_days:
            out.append(ExpiringAgreement(a.id, a.title, a.status, a.valid_until, left))
    return sorted(out, key=lambda e: (e.valid_until, e.agreement_id))


def governance_report(
    store: AuditStore,
    window: Window,
    *,
    policy: Policy | None = None,
    today: date | None = None,
    expiry_days: int = 60,
    schools: SchoolCalendar | None = None,
    now: datetime | None = None,
) -> GovernanceReport:
    """Shares and non-shares, the override backlog, quarantine, expiries, unopened
    deliveries, Encompass notices late at ``now`` on the ``schools`` calendar or never sent
    (the school had no key), consent withdrawal notices (those undelivered needing an
    officer to act), and runs of ``accord policy impact``."""
    decisions = sorted(
        (DecisionCount(*row) for row in store.decision_counts(window)),
        key=lambda c: (c.agreement_id or "", c.recipient, c.outcome, c.reason or ""),
    )
    expiring = None
    if policy is not None:
        expiring = tuple(
            expiring_agreements(policy, today or datetime.now(UTC).date(), expiry_days)
        )
    return GovernanceReport(
        since=window.since,
        until=window.until,
        decisions=tuple(decisions),
        pending_overrides=tuple(pending_overrides(store)),
        quarantine=tuple(store.quarantine_counts(window)),
        expiring=expiring,
        deliveries=tuple(RecipientOpenings(*row) for row in store.delivery_counts(window)),
        encompass_late=tuple(
            late_encompass_notices(
                store, schools or SchoolCalendar(), now or datetime.now(UTC), window
            )
        ),
        encompass_unsent=tuple(unsent_encompass_notices(store, window)),
        reviewed=tuple(reviewed_overrides(store, window)),
        withdrawals=tuple(withdrawal_notices(store, window)),
        decisions_total=sum(n for _, _, n in store.decisions_per_day(window)),
        impacts=tuple(policy_impact_runs(store, window)),
        keys=tuple(keys_loaded(store, window)),
    )
