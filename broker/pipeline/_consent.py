"""The chain a consent record passes through (``accord.consent``), in order, and the
recall every task runs when a withdrawal covers shares it made."""

from __future__ import annotations

import hashlib
from datetime import datetime

import structlog

from broker.audit import AuditKind
from broker.errors import EventInvalid
from broker.events import (
    ConsentRecord,
    WithdrawalNotice,
    holds_nhs_or_telephone_number,
    parse_consent,
)
from broker.pipeline._effects import Audit, ConsentShare, Effect, FileConsent, SetShares
from broker.pipeline._ingress import Open, spend
from broker.pipeline._metrics import Metrics
from broker.pipeline._services import Services
from broker.pipeline._stages import Step, Work, drop, forward, is_uuid, quarantine
from broker.pipeline._state import Filed, WorkerState
from broker.topics import SCHEMA_CONSENT, SCHEMA_NOTICE, deliver

log = structlog.get_logger("accord.worker")
#: The longest envelope id (schemas/envelope.md): a notice's id must be one.
MAX_ID = 255


class ParseConsent:
    """The payload must be a valid consent record, recorded by the party that sent it."""

    name = "parse"

    def __call__(self, work: Work) -> Step:
        assert work.opened is not None  # noqa: S101  # Open forwarded
        if not is_uuid(work.opened.event_id):
            # The record's id goes into the audit log and into every withdrawal notice's id:
            # a UUID, as the SDK makes them, never a string of the sender's choosing.
            return quarantine("invalid-consent")
        try:
            record = parse_consent(work.opened.payload, now=work.at)
        except EventInvalid:
            return quarantine("invalid-consent")
        if record.recorded_by != work.opened.sender:
            return quarantine("sender-mismatch")
        if record.recorded_at > work.at:
            # Stamped by a clock running ahead (within CLOCK_SKEW): in force from receipt,
            # or a withdrawal would tell past recipients now yet let new shares through.
            record = record.model_copy(update={"recorded_at": work.at})
        work.consent = record
        return forward()


WITHHELD_WORD = "(withheld: a number)"


def _word(term: str) -> str:
    """A purpose, kind or party id as written, for the audit log and the worker's log: one a
    recorder typed a child's NHS number (or a telephone number) into is withheld, as an
    access acknowledgement's ``by`` is: the audit log is append-only."""
    return WITHHELD_WORD if holds_nhs_or_telephone_number(term) else term


def _consent_audit(kind: AuditKind, work: Work, **extra: object) -> Audit:
    record, opened = work.consent, work.opened
    assert record is not None  # noqa: S101  # ParseConsent forwarded
    assert opened is not None  # noqa: S101  # Open forwarded
    return Audit(
        kind,
        event_id=opened.event_id,
        party=opened.sender,
        subject_keys=work.consent_keys,
        data={
            **extra,
            "state": record.state,
            "purposes": [_word(p) for p in record.purposes],
            "recipients": [_word(r) for r in record.recipients],
            "recorded_at": record.recorded_at.isoformat(),
            "valid_until": record.valid_until.isoformat() if record.valid_until else None,
        },
    )


class Authorise:
    """Only a consent authority of the bundle in force, active, within its authority, in
    the bundle's words (every purpose a clause's, every recipient a kind or a party of it).

    A record from anyone else, or naming a purpose or recipient the bundle does not know, is
    refused whole: audited as ``consent_refused`` (with the subject keys, so an IG officer
    finds the attempt in the child's log; and ``term``, the unknown word), never filed, so it
    changes no decision. A withdrawal is the exception: refused whole for a misspelt word,
    it would keep sharing what the family withdrew in words the bundle knows. So it is filed
    for those, at once, and the words it did not know are noted as ignored (``File``); only
    one naming no purpose, or no recipient, the bundle knows is refused (it withdraws
    nothing). In the worker (``metrics`` given) each refusal and each ignored word is also
    counted and logged as a warning.
    """

    name = "authorise"

    def __init__(self, services: Services, metrics: Metrics | None = None) -> None:
        self.services = services
        self.metrics = metrics

    def __call__(self, work: Work) -> Step:
        record = work.consent
        assert record is not None  # noqa: S101  # ParseConsent forwarded
        assert work.opened is not None  # noqa: S101  # Open forwarded
        work.consent_keys = self.services.linker.consent_keys(record.subject)
        policy = self.services.policy
        refused = policy.refusal_on_arrival(record)
        if refused is None:
            if ignored := policy.ignored_on_arrival(record):
                work.consent = policy.filed_on_arrival(record)
                work.consent_ignored = ignored
                self._ignored(work, ignored)
            return forward()
        reason, term = refused
        extra: dict[str, object] = {"reason": reason}
        if term is not None:
            extra["term"] = term = _word(term)
        if (m := self.metrics) is not None:
            m.count(m.consent_refused, reason)
            # A purpose, kind or party id and the record's UUID: nothing about the person.
            log.warning("consent_refused", reason=reason, term=term, state=record.state,
                        recorded_by=record.recorded_by, record_id=work.opened.event_id)  # fmt: skip
        audit = _consent_audit(AuditKind.CONSENT_REFUSED, work, **extra)
        return drop(reason, spend(work), audit)

    def _ignored(self, work: Work, ignored: tuple[tuple[str, str], ...]) -> None:
        if (m := self.metrics) is None:
            return
        assert work.opened is not None  # noqa: S101  # Open forwarded
        assert work.consent is not None  # noqa: S101  # ParseConsent forwarded
        for reason, _ in ignored:
            m.count(m.consent_terms_ignored, reason)
        # Purposes, kinds or party ids and the record's UUID: nothing about the person.
        log.warning("consent_terms_ignored", ignored=[f"{r}: {_word(t)}" for r, t in ignored],
                    state=work.consent.state, recorded_by=work.consent.recorded_by,
                    record_id=work.opened.event_id)  # fmt: skip


class File:
    """File the record under every subject key it may be found by; ``consent_recorded``.

    A withdrawal filed with words ignored (``Authorise``) says so on its audit record:
    ``reason`` (``unknown-purpose`` or ``unknown-recipient``, the first ignored word's, shown
    on the child's log line) and ``ignored`` (each word with its reason); its ``purposes``
    and ``recipients`` are the ones filed, which count.
    """

    name = "file"

    def __call__(self, work: Work) -> Step:
        record = work.consent
        assert record is not None  # noqa: S101  # ParseConsent forwarded
        assert work.opened is not None  # noqa: S101  # Open forwarded
        extra: dict[str, object] = {}
        if work.consent_ignored:
            extra = {
                "reason": work.consent_ignored[0][0],
                "ignored": [{"reason": r, "term": _word(t)} for r, t in work.consent_ignored],
            }
        return forward(
            spend(work),
            FileConsent(work.opened.event_id, work.consent_keys, record),
            _consent_audit(AuditKind.CONSENT_RECORDED, work, **extra),
        )


def recall(services: Services, state: WorkerState) -> list[Effect]:
    """Tell each past recipient under consent to stop, for every withdrawal that recalls a
    share this task made; forget those shares.

    Level-triggered, so it needs no order between workers: run at every transaction's close,
    it looks at the withdrawals filed since its last run (by any worker) and at the subjects
    this task shared under consent since then. A withdrawal recalls a share it covers when
    it was recorded at or after the grant the share rested on.
    """
    table = state.consents
    due: dict[str, Filed] = {}
    for filed in table.withdrawals[state.recalled_upto :]:
        if any(key in state.shares for key in filed.keys):
            due[filed.record_id] = filed
    state.recalled_upto = len(table.withdrawals)
    for key in state.take_touched():
        for filed in table.filed_under(key):
            if filed.record.state == "withdrawn":
                due[filed.record_id] = filed
    effects: list[Effect] = []
    for filed in due.values():
        effects += _recall_one(services, state, filed)
    return effects


def recall_due(state: WorkerState) -> bool:
    """Whether a withdrawal filed since the last ``recall`` covers a subject this task shared
    under consent: the loop then closes a transaction even with no record pending, so a
    quiet partition does not hold a recall back until its next record."""
    table = state.consents
    return any(
        key in state.shares
        for filed in table.withdrawals[state.recalled_upto :]
        for key in filed.keys
    )


def _recall_one(services: Services, state: WorkerState, filed: Filed) -> list[Effect]:
    record = filed.record

    postcode = record.subject.postcode
    digest = None if postcode is None else services.linker.postcode_digest(postcode)

    def recalled(s: ConsentShare) -> bool:
        return (
            _covers(record, s)
            and (s.granted_at is None or datetime.fromisoformat(s.granted_at) <= record.recorded_at)
            and _same_person(record, filed, s, digest)
        )

    keys = tuple(key for key in filed.keys if key in state.shares)
    hit = [s for key in keys for s in state.shares[key] if recalled(s)]
    by_recipient: dict[str, list[ConsentShare]] = {}
    for s in hit:
        by_recipient.setdefault(s.recipient, []).append(s)
    effects: list[Effect] = []
    for recipient, items in sorted(by_recipient.items()):
        notice = WithdrawalNotice(
            notice_id=_notice_id(filed, recipient, state),
            recipient=recipient,
            event_ids=tuple(sorted({s.event_id for s in items})),
            purposes=tuple(sorted({s.purpose for s in items})),
            withdrawn_at=record.recorded_at,
        )
        data: dict[str, object] = {
            "event_ids": list(notice.event_ids),
            "purposes": list(notice.purposes),
        }
        if services.sealer.can_seal_to(recipient):
            effects.append(
                services.sealed(
                    notice.model_dump(mode="json"),
                    event_id=notice.notice_id,
                    recipient=recipient,
                    schema=SCHEMA_NOTICE,
                    topic=deliver(recipient),
                )
            )
        else:
            # No live key to seal to (revoked or expired). Raising here would stop the
            # worker at every restart, for good: the withdrawal and the shares are committed.
            # So the notice is audited as undelivered, for IG officers to pass on by other
            # means (docs/governance.md), and the shares are forgotten all the same.
            log.error("withdrawal_notice_undelivered", recipient=recipient,
                      why="recipient-key-unavailable")  # fmt: skip
            data["undelivered"] = "recipient-key-unavailable"
        effects.append(
            Audit(
                AuditKind.CONSENT_WITHDRAWN_NOTICE,
                event_id=filed.record_id,
                party=recipient,
                subject_keys=filed.keys,
                data=data,
            )
        )
    for key in keys:
        held = state.shares[key]
        remaining = tuple(s for s in held if not recalled(s))
        if len(remaining) != len(held):
            effects.append(SetShares(key, remaining))
    return effects


def _notice_id(filed: Filed, recipient: str, state: WorkerState) -> str:
    """One notice per withdrawal, recipient and task (each task recalls its own shares)."""
    task = state.task
    readable = f"withdrawal-{filed.record_id}-{recipient}-{task.topic}-{task.partition}"
    if len(readable) <= MAX_ID:
        return readable
    # A record id from before ids had to be UUIDs could make it longer than an envelope id
    # may be, and sealing would fail: the same notice is then named by a digest of it.
    return "withdrawal-" + hashlib.sha256(readable.encode()).hexdigest()[:40]


def _same_person(
    record: ConsentRecord, filed: Filed, share: ConsentShare, postcode: str | None
) -> bool:
    """``ConsentSubject.matches`` as the decision applied it, over what a share keeps.

    The share was found under a key the withdrawal is filed under too: the NHS number's, or
    the name-and-birth-date one, which another child may share. Two NHS numbers must agree,
    and two postcodes, where both sides give one.
    """
    if share.subject is None:
        return True  # noted by an older Accord: recalled on the key alone, as it was then
    if record.subject.nhs_number is not None and share.subject.startswith("n:"):
        return share.subject in filed.keys
    return postcode is None or share.postcode is None or postcode == share.postcode


def _covers(record: ConsentRecord, share: ConsentShare) -> bool:
    purposes, recipients = record.purposes, record.recipients
    return ("*" in purposes or share.purpose in purposes) and (
        "*" in recipients
        or share.recipient in recipients
        or f"kind:{share.recipient_kind}" in recipients
    )


def consent_chain(
    services: Services, metrics: Metrics | None = None
) -> tuple[Open, ParseConsent, Authorise, File]:
    """The worker's chain, which counts and logs refusals (``metrics``); ``accord policy
    impact`` runs it without, and says nothing."""
    return (Open(services, SCHEMA_CONSENT), ParseConsent(), Authorise(services, metrics), File())
