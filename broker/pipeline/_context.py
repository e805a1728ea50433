"""What the stages share: keys, policy, linkage, state, and the audit chain they append to."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog

from broker._canonical import canonical_json
from broker.audit import AuditKind, ChainWriter, CheckpointSigner
from broker.config import EnvelopeSettings
from broker.envelope import KeyResolver, Opener, SealedRecord, Sealer
from broker.errors import EventInvalid
from broker.pipeline._linkage import Linker
from broker.pipeline._metrics import Metrics
from broker.pipeline._stages import OutRecord, Work
from broker.pipeline._state import ConsentShare, StateEntry, WorkerState
from broker.policy import Decision, Policy
from broker.topics import AUDIT, STATE, WORKER

log = structlog.get_logger("accord.worker")


class _StateReplayGuard:
    """The envelope's replay check, answered by (and recorded in) the durable state."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def first_sighting(self, event_id: str) -> bool:
        if event_id in self._ctx.state.processed:
            return False
        self._ctx.pending_state.append(self._ctx.state.mark_processed(event_id))
        return True


class Context:
    """Services for one worker; the processor resets ``pending_state`` per record."""

    def __init__(
        self,
        *,
        policy: Policy,
        keys: KeyResolver,
        linker: Linker,
        state: WorkerState,
        chain: ChainWriter,
        signer: CheckpointSigner,
        clock: Callable[[], datetime],
        envelope: EnvelopeSettings,
        pseudonym_key: bytes,
        metrics: Metrics,
    ) -> None:
        self.policy = policy
        self.linker = linker
        self.state = state
        self.chain = chain
        self._audit_key = chain.chain.encode()  # every record of the chain goes on one partition
        self.signer = signer
        self.clock = clock
        self.pseudonym_key = pseudonym_key
        self.metrics = metrics
        self.pending_state: list[StateEntry] = []
        self.audit_out: list[OutRecord] = []

        def ts() -> float:
            return clock().timestamp()

        self.opener = Opener(WORKER, keys, replay_guard=_StateReplayGuard(self), clock=ts)
        self.sealer = Sealer(WORKER, keys, envelope, clock=ts)

    # -- sealing -----------------------------------------------------------------------

    def seal(
        self, payload: dict[str, Any], event_id: str, recipient: str, schema: str, topic: str
    ) -> SealedRecord:
        return self.sealer.seal(
            canonical_json(payload),
            event_id=event_id,
            recipient=recipient,
            schema=schema,
            topic=topic,
        )

    def state_records(self) -> list[OutRecord]:
        """The pending state entries as changelog records (sensitive ones sealed)."""
        out: list[OutRecord] = []
        for entry in self.pending_state:
            value = entry.value
            headers: tuple[tuple[str, bytes], ...] = ()
            if entry.sensitive:
                sealed = self.sealer.seal(
                    entry.value,
                    event_id=_state_id(entry.key),
                    recipient=WORKER,
                    schema="worker-state.v1",
                    topic=STATE,
                )
                value, headers = sealed.value, tuple(sealed.headers)
            out.append(OutRecord(STATE, entry.key.encode(), value, headers))
        return out

    # -- audit -------------------------------------------------------------------------

    def audit(
        self,
        kind: AuditKind,
        *,
        event_id: str | None = None,
        party: str | None = None,
        subject_keys: tuple[str, ...] = (),
        data: dict[str, Any] | None = None,
    ) -> None:
        encoded = self.chain.append_encoded(
            kind, event_id=event_id, party=party, subject_keys=subject_keys, data=data
        )
        self.audit_out.append(OutRecord(AUDIT, self._audit_key, encoded))
        self.metrics.count(self.metrics.audit_records, kind.value)

    def checkpoint(self) -> None:
        rec = self.chain.checkpoint(self.signer)
        self.audit_out.append(OutRecord(AUDIT, self._audit_key, rec.to_bytes()))
        self.metrics.audit_records.labels(kind=rec.kind.value).inc()

    def audit_received(self, work: Work) -> None:
        event = work.event
        assert event is not None  # noqa: S101  # only called once validated
        self.metrics.count(self.metrics.received, event.sender)
        roles: dict[str, int] = {}
        for s in event.subjects:
            roles[s.role] = roles.get(s.role, 0) + 1
        self.audit(
            AuditKind.RECEIVED,
            event_id=str(event.event_id),
            party=event.sender,
            subject_keys=work.subject_keys,
            data={
                "type": event.type,
                "subject_roles": roles,
                "topic": work.topic,
                "partition": work.partition,
                "offset": work.offset,
            },
        )

    def audit_decided(self, work: Work, decision: Decision) -> None:
        self.metrics.count(self.metrics.decisions, decision.recipient, decision.outcome)
        keys = tuple(work.subject_keys[i] for i in decision.subjects) or work.subject_keys
        self.audit(
            AuditKind.DECIDED,
            event_id=str(decision.event_id),
            party=decision.recipient,
            subject_keys=keys,
            data=decision.model_dump(mode="json", exclude={"event_id", "recipient"}),
        )

    def audit_delivered(self, work: Work, decision: Decision, topic: str) -> None:
        keys = tuple(work.subject_keys[i] for i in decision.subjects)
        self.audit(
            AuditKind.DELIVERED,
            event_id=str(decision.event_id),
            party=decision.recipient,
            subject_keys=keys,
            data={"topic": topic, "outcome": decision.outcome, "fields": decision.fields_shared},
        )

    def remember_consent_share(self, work: Work, decision: Decision) -> None:
        """A share that rested on consent must be recallable if consent is withdrawn.

        Each clause is looked at, not only the first the decision names: beside a clause
        that needs no consent, another may add fields only because consent was given. A plain
        share through a clause that needs consent means consent for its purpose was given.
        """
        if decision.outcome != "shared":
            return  # an override shares without consent, nothing rests on it
        purposes = sorted({g.purpose for g in decision.grounds if g.consent != "not_required"})
        for purpose in purposes:
            share = ConsentShare(
                recipient=decision.recipient,
                recipient_kind=decision.recipient_kind,
                purpose=purpose,
                event_id=str(decision.event_id),
            )
            for i in decision.subjects:
                self.pending_state.append(self.state.note_share(work.subject_keys[i], share))

    def note_invalid(self, work: Work, exc: EventInvalid) -> None:
        # Field paths only: EventInvalid never carries values, and neither does this line.
        log.info(
            "event_invalid",
            topic=work.topic,
            offset=work.offset,
            fields=[path for path, _ in exc.problems],
        )


def _state_id(key: str) -> str:
    # Envelope event ids are bounded identifiers; a state key is hashed into one.
    return "state-" + hashlib.sha256(key.encode()).hexdigest()[:40]
