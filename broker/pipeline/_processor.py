"""Dispatching one input record to its chain, and everything that happens on the way out.

Pure: given a record it returns the records to produce (deliveries, notices, quarantine,
audit, state changelog); the Kafka edge writes them and the input offset in one transaction.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import structlog
from pydantic import ValidationError

from broker.audit import AuditKind
from broker.errors import EventInvalid
from broker.events import parse_consent
from broker.pipeline._context import Context
from broker.pipeline._ingress import Open, ingress_chain
from broker.pipeline._linkage import digest_of
from broker.pipeline._stages import OutRecord, Step, Verdict, Work, run_chain
from broker.pipeline._state import ConsentShare
from broker.policy import Policy
from broker.sdk import AccessAck, WithdrawalNotice
from broker.topics import (
    ACCESS,
    CONSENT,
    QUARANTINE,
    SCHEMA_ACCESS,
    SCHEMA_CONSENT,
    SCHEMA_NOTICE,
    SCHEMA_QUARANTINE,
    deliver,
    party_of_ingress,
)

log = structlog.get_logger("accord.worker")

GOVERNANCE = "governance"


class Processor:
    """Turns one input record into the records to write, all-or-nothing with its offset."""

    def __init__(self, ctx: Context, *, checkpoint_every: int = 1000) -> None:
        self.ctx = ctx
        self._ingress = ingress_chain(ctx)
        self._consent_open = Open(ctx, SCHEMA_CONSENT)
        self._access_open = Open(ctx, SCHEMA_ACCESS)
        self._checkpoint_every = checkpoint_every
        self._since_checkpoint = 0
        self._head_written = ctx.chain.next_seq

    def policy_loaded(self, policy: Policy, *, source: str) -> list[OutRecord]:
        """Put a (new) bundle in force; audited as ``policy_loaded``."""
        self.ctx.policy = policy
        self.ctx.metrics.policy_version.clear()
        self.ctx.metrics.policy_version.labels(version=policy.version).set(1)
        parties, agreements, clauses = policy.counts
        self.ctx.audit(
            AuditKind.POLICY_LOADED,
            data={
                "version": policy.version,
                "source": source,
                "parties": parties,
                "agreements": agreements,
                "clauses": clauses,
            },
        )
        return self.flush()

    def handle(
        self,
        topic: str,
        partition: int,
        offset: int,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        *,
        at: datetime,
    ) -> list[OutRecord]:
        work = Work(topic, partition, offset, value or b"", headers, at)
        if not value:
            step, stage = Step(Verdict.QUARANTINE, "malformed"), "read"
        elif party_of_ingress(topic) is not None:
            step, stage = run_chain(self._ingress, work)
        elif topic == CONSENT:
            step, stage = self._consent(work), "consent"
        elif topic == ACCESS:
            step, stage = self._access(work), "access"
        else:
            step, stage = Step(Verdict.QUARANTINE, "unknown-topic"), "route"
        if step.verdict is Verdict.QUARANTINE:
            self._quarantine(work, step.reason or "unknown", stage)
        out = work.out
        self._since_checkpoint += 1
        if self._since_checkpoint >= self._checkpoint_every:
            self.checkpoint()
        return out + self._drain()

    def checkpoint(self) -> None:
        """Sign the chain's head; the record goes out with the next ``flush``."""
        if self.ctx.chain.next_seq > 0:
            self.ctx.checkpoint()
        self._since_checkpoint = 0

    def flush(self) -> list[OutRecord]:
        """What is pending, then the audit chain's head: call once per transaction, last.

        The head is written once per transaction rather than per record: only the head at
        commit matters for a restart, and it is the one record per event fewer to write.
        """
        ctx = self.ctx
        if ctx.chain.next_seq != self._head_written:
            self._head_written = ctx.chain.next_seq
            ctx.pending_state.append(
                ctx.state.set_head(ctx.chain.chain, ctx.chain.next_seq - 1, ctx.chain.prev_hash)
            )
        return self._drain()

    def _drain(self) -> list[OutRecord]:
        """Audit records, then state changelog entries, in the order they were made."""
        ctx = self.ctx
        out = ctx.audit_out + ctx.state_records()
        ctx.audit_out = []
        ctx.pending_state = []
        return out

    # -- quarantine ----------------------------------------------------------------------

    def _quarantine(self, work: Work, reason: str, stage: str) -> None:
        self.ctx.metrics.quarantined.labels(reason=reason).inc()
        digest = digest_of(work.value)
        held = {
            "reason": reason,
            "stage": stage,
            "topic": work.topic,
            "partition": work.partition,
            "offset": work.offset,
            "digest": digest,
            "value": base64.b64encode(work.value).decode("ascii"),
            "headers": [[k, base64.b64encode(v).decode("ascii")] for k, v in work.headers],
        }
        qid = f"q-{work.topic}-{work.partition}-{work.offset}"
        sealed = self.ctx.seal(held, qid, GOVERNANCE, SCHEMA_QUARANTINE, QUARANTINE)
        work.out.append(OutRecord(QUARANTINE, qid.encode(), sealed.value, tuple(sealed.headers)))
        self.ctx.audit(
            AuditKind.QUARANTINED,
            event_id=work.opened.event_id if work.opened else None,
            party=work.sender,
            data={
                "reason": reason,
                "stage": stage,
                "topic": work.topic,
                "partition": work.partition,
                "offset": work.offset,
                "digest": digest,
            },
        )
        log.warning(
            "quarantined",
            reason=reason,
            stage=stage,
            topic=work.topic,
            partition=work.partition,
            offset=work.offset,
        )

    # -- consent -------------------------------------------------------------------------

    def _consent(self, work: Work) -> Step:
        step = self._consent_open(work)
        if step.verdict is not Verdict.FORWARD:
            return step
        assert work.opened is not None  # noqa: S101  # Open forwarded
        try:
            record = parse_consent(work.opened.payload, now=work.at)
        except EventInvalid:
            return Step(Verdict.QUARANTINE, "invalid-consent")
        if record.recorded_by != work.opened.sender:
            return Step(Verdict.QUARANTINE, "sender-mismatch")
        if record.recorded_at > work.at:
            # Stamped by a clock running ahead (within CLOCK_SKEW): in force from receipt,
            # or a withdrawal would tell past recipients now yet let new shares through.
            record = record.model_copy(update={"recorded_at": work.at})
        ctx = self.ctx
        keys = ctx.linker.consent_keys(record.subject)
        for key in keys:
            ctx.pending_state.append(ctx.state.file_consent(key, record))
        ctx.audit(
            AuditKind.CONSENT_RECORDED,
            event_id=work.opened.event_id,
            party=work.opened.sender,
            subject_keys=keys,
            data={
                "state": record.state,
                "purposes": list(record.purposes),
                "recipients": list(record.recipients),
                "recorded_at": record.recorded_at.isoformat(),
                "valid_until": record.valid_until.isoformat() if record.valid_until else None,
            },
        )
        if record.state == "withdrawn":
            self._notify_withdrawal(
                work, keys, record.purposes, record.recipients, record.recorded_at
            )
        return Step(Verdict.FORWARD)

    def _notify_withdrawal(
        self,
        work: Work,
        keys: tuple[str, ...],
        purposes: tuple[str, ...],
        recipients: tuple[str, ...],
        withdrawn_at: datetime,
    ) -> None:
        """Tell each past recipient under consent to stop processing what it received."""
        ctx = self.ctx
        shares = [s for key in keys for s in ctx.state.shares.get(key, [])]

        def covered(s: ConsentShare) -> bool:
            return ("*" in purposes or s.purpose in purposes) and (
                "*" in recipients
                or s.recipient in recipients
                or f"kind:{s.recipient_kind}" in recipients
            )

        hit = [s for s in shares if covered(s)]
        if not hit:
            return
        by_recipient: dict[str, list[ConsentShare]] = {}
        for s in hit:
            by_recipient.setdefault(s.recipient, []).append(s)
        for recipient, items in sorted(by_recipient.items()):
            notice_id = (
                f"withdrawal-{work.opened.event_id if work.opened else work.offset}-{recipient}"
            )
            notice = WithdrawalNotice(
                notice_id=notice_id,
                recipient=recipient,
                event_ids=tuple(sorted({s.event_id for s in items})),
                purposes=tuple(sorted({s.purpose for s in items})),
                withdrawn_at=withdrawn_at,
            )
            topic = deliver(recipient)
            sealed = ctx.seal(
                notice.model_dump(mode="json"), notice_id, recipient, SCHEMA_NOTICE, topic
            )
            work.out.append(
                OutRecord(topic, notice_id.encode(), sealed.value, tuple(sealed.headers))
            )
            ctx.audit(
                AuditKind.CONSENT_WITHDRAWN_NOTICE,
                event_id=work.opened.event_id if work.opened else None,
                party=recipient,
                subject_keys=keys,
                data={"event_ids": list(notice.event_ids), "purposes": list(notice.purposes)},
            )
        for key in keys:
            if not ctx.state.shares.get(key):
                continue
            remaining = [s for s in ctx.state.shares[key] if not covered(s)]
            ctx.state.shares[key] = []
            for s in remaining:
                ctx.pending_state.append(ctx.state.note_share(key, s))
            if not remaining:
                ctx.pending_state.append(ctx.state.clear_shares(key))

    # -- access acknowledgements -------------------------------------------------------

    def _access(self, work: Work) -> Step:
        step = self._access_open(work)
        if step.verdict is not Verdict.FORWARD:
            return step
        assert work.opened is not None  # noqa: S101  # Open forwarded
        try:
            ack = AccessAck.model_validate_json(work.opened.payload)
        except ValidationError:
            return Step(Verdict.QUARANTINE, "invalid-ack")
        if ack.recipient != work.opened.sender:
            return Step(Verdict.QUARANTINE, "sender-mismatch")
        data: dict[str, Any] = {"by": ack.by, "purpose": ack.purpose, "at": ack.at.isoformat()}
        self.ctx.audit(AuditKind.OPENED, event_id=ack.event_id, party=ack.recipient, data=data)
        return Step(Verdict.FORWARD)
