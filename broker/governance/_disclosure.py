"""A child's disclosure log: every line of the audit index about them, for a subject access
request (``accord audit subject``, the console's page for a child).

Decisions about the child's data (shared and not), their deliveries and openings, events
received about them that no decision about them followed, the consent recorded about them (or
refused), and the withdrawal notices sent, or not, to recipients: each a
:class:`DisclosureEntry` (``_disclosure_entry``), made here from the records it was read from.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from broker.audit import AuditKind, AuditRecord
from broker.events import holds_nhs_or_telephone_number
from broker.governance._disclosure_entry import DisclosureEntry, EntryKind
from broker.governance._grounds import basis_text, decision_grounds, str_or_none, str_tuple
from broker.governance._review import review_status
from broker.governance._sent import decision_consent_rule, sent_about, transforms_of
from broker.governance._store import AuditStore
from broker.policy import basis_words

if TYPE_CHECKING:
    from collections.abc import Callable


# Lines at the same instant: a decision before its delivery, both before an opening; a consent
# record before the notices it causes.
_ORDER = {"consent": 0, "consent_refused": 0, "received": 1, "decision": 1, "delivered": 2,
          "opened": 3, "withdrawal_notice": 4}  # fmt: skip

# Why an event received about the child was shared with no one, as the log can tell. One
# reason whether or not the event named others on whom decisions were taken: the log is the
# child's, and decisions about others in it are theirs (third-party data), so it never says.
NO_RECIPIENT = "no-recipient"  # nothing else known: nothing in it about the child went to anyone
QUARANTINED = "quarantined"  # its processing failed, so nothing in it went to anyone
_SHARES = frozenset({"shared", "shared_override"})


def _decision_entry(rec: AuditRecord, keys: tuple[str, ...] | None = None) -> DisclosureEntry:
    d = rec.data
    fields, transforms = sent_about(rec.data, rec.subject_keys, keys)
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
        shown_basis=basis_words(d.get("lawful_basis")),
        agreement_id=d.get("agreement_id"),
        clauses=str_tuple(d.get("clause_ids")),
        fields_shared=fields,
        fields_withheld=str_tuple(d.get("fields_withheld")),
        consent=d.get("consent"),
        override_grounds=d.get("override_grounds"),
        opened_by=None,
        policy_version=d.get("policy_version"),
        chain=rec.chain,
        seq=rec.seq,
        grounds=decision_grounds(d),
        transforms=transforms_of(transforms),
        consent_rule=str_or_none(d.get("consent_rule")),
        shared_rule=decision_consent_rule(d),
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


def _after_decision(
    rec: AuditRecord, decided: DisclosureEntry | None, kind: EntryKind
) -> DisclosureEntry:
    """A delivery or an opening, carrying over what its decision said (when found)."""
    opened = kind == "opened"
    fields = str_tuple(rec.data.get("fields")) if not opened else None
    if fields is not None and decided is not None:
        # A delivery lists the decision-wide fields: what went about this person is their
        # scope's (``sent_about``), which the decision's line holds.
        fields = tuple(f for f in fields if f in decided.fields_shared)
    return DisclosureEntry(
        # An opening is when the recipient's clock says; a delivery when the worker sent it.
        at=_opened_at(rec) if opened else rec.at,
        logged_at=rec.at,
        kind=kind,
        event_id=rec.event_id or "",
        event_type=decided.event_type if decided else None,
        sender=decided.sender if decided else None,
        recipient=rec.party or "",
        # The decision's line says how it was shared: a delivery repeats no outcome, so
        # that each share is counted once by its outcome.
        outcome=None,
        reason=None,
        purpose=_opened_purpose(rec.data.get("purpose"))
        if opened
        else (decided.purpose if decided else None),
        lawful_basis=decided.lawful_basis if decided else None,
        shown_basis=decided.shown_basis if decided else None,
        agreement_id=decided.agreement_id if decided else None,
        clauses=decided.clauses if decided else (),
        # What was sent is the delivery's own list; an opening is of what its decision shared.
        fields_shared=fields if fields is not None else (decided.fields_shared if decided else ()),
        fields_withheld=(),
        consent=None,
        override_grounds=None,
        opened_by=_opened_by(rec.data.get("by")) if opened else None,
        policy_version=None,
        chain=rec.chain,
        seq=rec.seq,
        grounds=decided.grounds if decided else (),
        transforms=decided.transforms if decided else (),
    )


# An opening's ``by`` as a SAR shows it when it is no staff id: acknowledgements taken before
# 2026-12-07 could carry an NHS or telephone number there, which the log keeps for ever.
WITHHELD_BY = "(withheld: not a staff id)"


def _opened_by(by: object) -> str | None:
    if by is None:
        return None
    text = str(by)
    return WITHHELD_BY if holds_nhs_or_telephone_number(text) else text


# As for ``by``: an opening's purpose recorded before 2026-12-07 could hold such a number.
WITHHELD_PURPOSE = "(withheld: not a purpose)"


def _opened_purpose(purpose: object) -> str | None:
    if purpose is None:
        return None
    text = str(purpose)
    return WITHHELD_PURPOSE if holds_nhs_or_telephone_number(text) else text


def _recorded_at(rec: AuditRecord) -> datetime | None:
    """A consent record's own ``recorded_at`` (never later than the broker received it,
    ParseConsent), in UTC; None when it has none readable."""
    try:
        at = datetime.fromisoformat(str(rec.data["recorded_at"]))
    except (KeyError, ValueError):
        return None
    return at.astimezone(UTC) if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _consent_entry(rec: AuditRecord) -> DisclosureEntry:
    """A consent record filed about the subject, or (``consent_refused``) one the broker
    refused from a party that may not record it: by whom (``sender``), its state and scope."""
    d = rec.data
    notice = rec.kind is AuditKind.CONSENT_WITHDRAWN_NOTICE
    kind: EntryKind = "consent"
    if notice:
        kind = "withdrawal_notice"
    elif rec.kind is AuditKind.CONSENT_REFUSED:
        kind = "consent_refused"
    undelivered = str_or_none(d.get("undelivered"))
    outcome = None
    if notice:
        outcome = "undelivered" if undelivered else "delivered"
    return DisclosureEntry(
        # Listed when the broker received it (decisions on other workers may see it a moment
        # later): at its own recorded_at (earlier, by however long it took to arrive) it would
        # stand above decisions taken before it arrived, which could not see it. Both shown.
        at=rec.at,
        logged_at=rec.at,
        recorded_at=_recorded_at(rec) if kind == "consent" else None,
        kind=kind,
        # A notice's event is the withdrawal's (the consent record's id), as is the line of
        # the withdrawal itself; the shares it recalls are in ``recalls``.
        event_id=rec.event_id or "",
        event_type=None,
        # The consent authority that recorded it; a notice is the broker's own.
        sender=None if notice else rec.party,
        recipient=(rec.party or "") if notice else "",
        outcome=outcome,
        reason=undelivered if notice else str_or_none(d.get("reason")),
        purpose=None,
        lawful_basis=None,
        agreement_id=None,
        clauses=(),
        fields_shared=(),
        fields_withheld=(),
        consent=None if notice else str_or_none(d.get("state")),
        override_grounds=None,
        opened_by=None,
        policy_version=None,
        chain=rec.chain,
        seq=rec.seq,
        purposes=str_tuple(d.get("purposes")),
        recipients=() if notice else str_tuple(d.get("recipients")),
        valid_until=None if notice else str_or_none(d.get("valid_until")),
        recalls=str_tuple(d.get("event_ids")) if notice else (),
    )


def _received_entry(rec: AuditRecord, *, quarantined: bool) -> DisclosureEntry:
    """An event received about the subject on which no decision about them was taken: from
    whom, when and of what kind, shared with no one, and why as far as the log knows."""
    return DisclosureEntry(
        at=rec.at,
        logged_at=rec.at,
        kind="received",
        event_id=rec.event_id or "",
        event_type=str_or_none(rec.data.get("type")),
        sender=rec.party,
        recipient="",
        outcome="not_shared",
        reason=QUARANTINED if quarantined else NO_RECIPIENT,
        purpose=None,
        lawful_basis=None,
        agreement_id=None,
        clauses=(),
        fields_shared=(),
        fields_withheld=(),
        consent=None,
        override_grounds=None,
        opened_by=None,
        policy_version=None,
        chain=rec.chain,
        seq=rec.seq,
    )


def _received_entries(store: AuditStore, records: list[AuditRecord]) -> list[DisclosureEntry]:
    """A line for each event received about the subject with no decision about them after it
    on its chain among ``records`` (the store leaves out most; one key's decision may answer
    another's receipt). A receipt and its decisions share a chain, one sender's: an event
    under the same id from another sender answers nothing (``_sql_received``)."""
    decided: dict[tuple[str, str], int] = {}
    for rec in records:
        if rec.kind is AuditKind.DECIDED and rec.event_id:
            key = (rec.chain, rec.event_id)
            decided[key] = max(decided.get(key, -1), rec.seq)
    last: dict[tuple[str, str], AuditRecord] = {}
    for rec in records:
        if rec.kind is not AuditKind.RECEIVED or not rec.event_id:
            continue
        key = (rec.chain, rec.event_id)
        if decided.get(key, -1) > rec.seq:
            continue
        # A copy received again (re-sent after a failed attempt) is one event, listed as its
        # last receipt went: that is how it ended.
        if key not in last or last[key].seq < rec.seq:
            last[key] = rec
    receipts = [(r.chain, r.seq, r.event_id or "") for r in last.values()]
    failed = store.quarantined_receipts(receipts) if receipts else set()
    return [_received_entry(r, quarantined=(r.chain, r.seq) in failed) for r in last.values()]


_CONSENT_KINDS = frozenset(
    {AuditKind.CONSENT_RECORDED, AuditKind.CONSENT_REFUSED, AuditKind.CONSENT_WITHDRAWN_NOTICE}
)


def disclosure_log(
    store: AuditStore, *subject_keys: str, matched_on: Callable[[str], str] | None = None
) -> list[DisclosureEntry]:
    """Every decision about the subject (shared and not), every delivery and opening, every
    event received about them that no decision about them followed, every consent record
    about them (filed or refused) and every withdrawal notice, in date order (a consent
    record's at when the broker received it).

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
    # Each decision as it concerned the person under every key searched (``sent_about``): one
    # person may be in a decision under two of theirs, and what went in full under either
    # went in full.
    taken = [r for r, _ in found.values() if r.kind is AuditKind.DECIDED]
    decisions = {(r.event_id, r.party): _decision_entry(r, subject_keys) for r in taken}
    entries = [_decision_entry(r, subject_keys) for r in taken]
    for rec in records:
        if rec.kind is AuditKind.OPENED:
            entries.append(_after_decision(rec, decisions.get((rec.event_id, rec.party)), "opened"))
        elif rec.kind is AuditKind.DELIVERED:
            decided = decisions.get((rec.event_id, rec.party))
            entries.append(_after_decision(rec, decided, "delivered"))
        elif rec.kind in _CONSENT_KINDS:
            entries.append(_consent_entry(rec))
    entries += _received_entries(store, records)
    entries = _mark_not_sent(store, entries)
    entries = [
        dataclasses.replace(e, review=review_status(store, e.event_id, e.recipient))
        if e.kind == "decision" and e.outcome == "shared_override"
        else e
        for e in entries
    ]
    entries.sort(key=lambda e: (e.at, _ORDER[e.kind], e.recipient, e.chain, e.seq))
    if how:
        entries = [dataclasses.replace(e, matched_on=how[(e.chain, e.seq)]) for e in entries]
    return entries


def _mark_not_sent(store: AuditStore, entries: list[DisclosureEntry]) -> list[DisclosureEntry]:
    """Mark the shares whose event was quarantined after them on their chain, with no
    delivery to their recipient between (no view left). As for a receipt: a later copy is
    refused before ``decide`` (its id is spent)."""
    shares = [
        (e.chain, e.seq, e.event_id, e.recipient)
        for e in entries
        if e.kind == "decision" and e.outcome in _SHARES and e.event_id
    ]
    failed = store.unsent_shares(shares) if shares else set()
    return [
        dataclasses.replace(e, not_sent=True, reason=e.reason or QUARANTINED)
        if e.kind == "decision" and (e.chain, e.seq) in failed
        else e
        for e in entries
    ]


def override_entry(store: AuditStore, event_id: str, recipient: str) -> DisclosureEntry | None:
    """A safeguarding override's decision as a line of the child's disclosure log, with its
    review, marked not sent as there; None when that event and recipient have no override."""
    rec = store.find_decision(event_id, recipient)
    if rec is None or rec.data.get("outcome") != "shared_override":
        return None
    [entry] = _mark_not_sent(store, [_decision_entry(rec)])
    return dataclasses.replace(entry, review=review_status(store, event_id, recipient))
