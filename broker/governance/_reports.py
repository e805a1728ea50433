"""IG reports over the audit index: pure queries the CLI prints and the console renders.

Each function takes an :class:`AuditStore` (and, where needed, the policy bundle and today's
date) and returns plain frozen dataclasses: no I/O besides the store, no formatting, no
personal values (subject keys, party ids, clause ids and field names only).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from broker.audit import AuditKind, AuditRecord
from broker.config import SchoolCalendar
from broker.governance._encompass import EncompassNotice, late_encompass_notices
from broker.governance._store import AuditStore, Window

if TYPE_CHECKING:
    from collections.abc import Callable

    from broker.policy import Policy


@dataclass(frozen=True, slots=True)
class Ground:
    """One clause a decision rests on (or, refused, was weighed under): its agreement, purpose
    and lawful basis. A share under two agreements has two, and each is a basis for it."""

    agreement_id: str | None
    clause_id: str | None
    purpose: str | None
    lawful_basis: str | None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class ReviewStatus:
    """Where an override's review stands: awaiting one, or the officer's finding (a review
    written before findings kept a note instead, which is not repeated: it is free text)."""

    reviewed: bool
    finding: str | None = None  # a ReviewFinding's value; "" for a review with a note
    reviewed_by: str | None = None
    reference: str | None = None
    reviewed_at: datetime | None = None

    @property
    def finding_text(self) -> str:
        return (self.finding or "noted (before findings)").replace("_", " ")

    def text(self) -> str:
        """``not justified by ig.jo at 2026-11-23T09:00:00+00:00, ref IG-2026-114``."""
        if not self.reviewed:
            return "awaiting review"
        at = self.reviewed_at.isoformat() if self.reviewed_at else ""
        ref = f", ref {self.reference}" if self.reference else ""
        return f"{self.finding_text} by {self.reviewed_by} at {at}{ref}"

    def as_dict(self) -> dict[str, Any]:
        if not self.reviewed:
            return {"state": "awaiting_review"}
        return {
            "state": "reviewed",
            "finding": self.finding or None,
            "reviewed_by": self.reviewed_by,
            "reference": self.reference or None,
            "reviewed_at": self.reviewed_at.isoformat() if self.reviewed_at else None,
        }


def review_status(store: AuditStore, event_id: str, recipient: str) -> ReviewStatus:
    review = store.review_of(event_id, recipient)
    if review is None:
        return ReviewStatus(reviewed=False)
    return ReviewStatus(True, review.finding, review.reviewed_by, review.reference,
                        review.reviewed_at)  # fmt: skip


@dataclass(frozen=True, slots=True)
class DisclosureEntry:
    """One line of a child's disclosure log: a decision about their data, or an access."""

    at: datetime
    kind: Literal["decision", "opened"]
    event_id: str
    event_type: str | None
    sender: str | None
    recipient: str
    outcome: str | None
    reason: str | None
    purpose: str | None
    lawful_basis: str | None
    agreement_id: str | None
    clauses: tuple[str, ...]
    fields_shared: tuple[str, ...]
    fields_withheld: tuple[str, ...]
    consent: str | None
    override_grounds: str | None
    opened_by: str | None
    policy_version: str | None
    chain: str
    seq: int
    # Every agreement, purpose and lawful basis the decision rests on, the first being
    # ``agreement_id``, ``purpose`` and ``lawful_basis`` (an opening's purpose is its own).
    grounds: tuple[Ground, ...] = ()
    # How the look-up found it (``SubjectSearch.matched_on``): by a name-and-birth-date search
    # with a postcode, a record under the key without one may be another child's.
    matched_on: str | None = None
    # A safeguarding override's review, on its decision's line (None on every other line).
    review: ReviewStatus | None = None
    # When the log recorded it (an opening's ``at`` is the recipient's clock): what a SAR's
    # header compares with the last verification's time.
    logged_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "kind": self.kind,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "sender": self.sender,
            "recipient": self.recipient,
            "outcome": self.outcome,
            "reason": self.reason,
            "purpose": self.purpose,
            "lawful_basis": self.lawful_basis,
            "agreement_id": self.agreement_id,
            "clauses": list(self.clauses),
            "fields_shared": list(self.fields_shared),
            "fields_withheld": list(self.fields_withheld),
            "consent": self.consent,
            "override_grounds": self.override_grounds,
            "opened_by": self.opened_by,
            "policy_version": self.policy_version,
            "grounds": [g.as_dict() for g in self.grounds],
            "audit_ref": f"{self.chain}#{self.seq}",
            "matched_on": self.matched_on,
            "review": self.review.as_dict() if self.review else None,
        }


def basis_text(basis: object) -> str | None:
    """``public_task; Art 9: safeguarding_children`` from a decision's ``lawful_basis``."""
    if not isinstance(basis, dict):
        return None
    parts = [str(basis.get("article6") or "")]
    for art in ("article9", "article10"):
        if basis.get(art):
            parts.append(f"Art {art[7:]}: {basis[art]}")
    return "; ".join(p for p in parts if p) or None


def _tuple(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, (list, tuple)) else ()


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def decision_grounds(data: dict[str, Any]) -> tuple[Ground, ...]:
    """Every clause a ``decided`` record's data names in its ``grounds``; a record written
    without them (before they were recorded) has its one agreement, purpose and basis."""
    listed = data.get("grounds")
    if isinstance(listed, list) and listed:
        return tuple(
            Ground(
                _text(g.get("agreement_id")),
                _text(g.get("clause_id")),
                _text(g.get("purpose")),
                basis_text(g.get("lawful_basis")),
            )
            for g in listed
            if isinstance(g, dict)
        )
    first = Ground(
        _text(data.get("agreement_id")),
        None,
        _text(data.get("purpose")),
        basis_text(data.get("lawful_basis")),
    )
    return () if first == Ground(None, None, None, None) else (first,)


def _decision_entry(rec: AuditRecord) -> DisclosureEntry:
    d = rec.data
    return DisclosureEntry(
        at=rec.at,
        logged_at=rec.at,
        kind="decision",
        event_id=rec.event_id or "",
        event_type=d.get("event_type"),
        sender=d.get("sender"),
        recipient=rec.party or "",
        outcome=d.get("outcome"),
        reason=d.get("reason"),
        purpose=d.get("purpose"),
        lawful_basis=basis_text(d.get("lawful_basis")),
        agreement_id=d.get("agreement_id"),
        clauses=_tuple(d.get("clause_ids")),
        fields_shared=_tuple(d.get("fields_shared")),
        fields_withheld=_tuple(d.get("fields_withheld")),
        consent=d.get("consent"),
        override_grounds=d.get("override_grounds"),
        opened_by=None,
        policy_version=d.get("policy_version"),
        chain=rec.chain,
        seq=rec.seq,
        grounds=decision_grounds(d),
    )


def _opened_at(rec: AuditRecord) -> datetime:
    try:
        at = datetime.fromisoformat(str(rec.data["at"]))
    except (KeyError, ValueError):
        return rec.at
    # Acknowledgements were taken without a zone before 2026-12-05, and the log keeps them
    # as written: read as UTC, or sorting them among the decisions fails the whole log. A
    # recipient's clock may give its own offset: shown in UTC, as every other time is.
    return at.astimezone(UTC) if at.tzinfo is not None else at.replace(tzinfo=UTC)


def disclosure_log(
    store: AuditStore, *subject_keys: str, matched_on: Callable[[str], str] | None = None
) -> list[DisclosureEntry]:
    """Every decision about the subject (shared and not) and every opening, in date order.

    One person may be filed under several keys (a look-up by demographics searches each form
    of theirs, ``subject_search``, most specific first): a record under two of them is
    listed once, as found by the first, which ``matched_on`` names when given.
    """
    found: dict[tuple[str, int], tuple[AuditRecord, str]] = {}
    for key in subject_keys:
        for r in store.subject_records(key):
            found.setdefault((r.chain, r.seq), (r, key))
    how = {(r.chain, r.seq): matched_on(key) for r, key in found.values()} if matched_on else {}
    records = [r for r, _ in found.values()]
    decisions = {
        (r.event_id, r.party): _decision_entry(r) for r in records if r.kind is AuditKind.DECIDED
    }
    entries = [_decision_entry(r) for r in records if r.kind is AuditKind.DECIDED]
    for rec in records:
        if rec.kind is not AuditKind.OPENED:
            continue
        decided = decisions.get((rec.event_id, rec.party))
        entries.append(
            DisclosureEntry(
                at=_opened_at(rec),
                logged_at=rec.at,
                kind="opened",
                event_id=rec.event_id or "",
                event_type=decided.event_type if decided else None,
                sender=decided.sender if decided else None,
                recipient=rec.party or "",
                outcome=None,
                reason=None,
                purpose=rec.data.get("purpose"),
                lawful_basis=decided.lawful_basis if decided else None,
                agreement_id=decided.agreement_id if decided else None,
                clauses=decided.clauses if decided else (),
                fields_shared=decided.fields_shared if decided else (),
                fields_withheld=(),
                consent=None,
                override_grounds=None,
                opened_by=rec.data.get("by"),
                policy_version=None,
                chain=rec.chain,
                seq=rec.seq,
                grounds=decided.grounds if decided else (),
            )
        )
    entries = [
        dataclasses.replace(e, review=review_status(store, e.event_id, e.recipient))
        if e.kind == "decision" and e.outcome == "shared_override"
        else e
        for e in entries
    ]
    entries.sort(key=lambda e: (e.at, e.kind != "decision", e.recipient, e.chain, e.seq))
    if how:
        entries = [dataclasses.replace(e, matched_on=how[(e.chain, e.seq)]) for e in entries]
    return entries


def override_entry(store: AuditStore, event_id: str, recipient: str) -> DisclosureEntry | None:
    """A safeguarding override's decision as a line of the child's disclosure log, with its
    review; None when that event and recipient have no override."""
    rec = store.find_decision(event_id, recipient)
    if rec is None or rec.data.get("outcome") != "shared_override":
        return None
    entry = _decision_entry(rec)
    return dataclasses.replace(entry, review=review_status(store, event_id, recipient))


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
    # Overrides reviewed in the window, newest first: each finding stays visible.
    reviewed: tuple[ReviewedOverride, ...] = ()

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
                clauses=_tuple(d.get("clause_ids")),
                grounds=d.get("override_grounds"),
                agreements=decision_grounds(d),
                subject_keys=rec.subject_keys,
                consent=_text(d.get("consent")),
                fields_shared=_tuple(d.get("fields_shared")),
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
    deliveries, and Encompass notices late at ``now`` on the ``schools`` calendar."""
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
        reviewed=tuple(reviewed_overrides(store, window)),
    )
