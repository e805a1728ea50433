"""One input record in, the records its transaction must commit out.

The processor picks the record's chain by topic, runs it, and hands what the chain produced
to the ``Outbox``; a record a chain quarantines is sealed to the governance principal and
audited. No Kafka here: the loop (``_loop``) does the consuming and committing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Sequence
from datetime import datetime

import structlog

from broker.audit import AuditKind, ChainWriter, KeystoreAuditSigner
from broker.config import EnvelopeSettings
from broker.envelope import KeyResolver
from broker.linkage import Linker
from broker.pipeline._access import access_chain
from broker.pipeline._consent import consent_chain
from broker.pipeline._effects import Audit, Effect, OutRecord, SetOffset
from broker.pipeline._ingress import ingress_chain
from broker.pipeline._metrics import Metrics
from broker.pipeline._outbox import Outbox
from broker.pipeline._services import Services
from broker.pipeline._stages import Outcome, Stage, Verdict, Work, run_chain
from broker.pipeline._state import WorkerState
from broker.policy import Policy
from broker.principals import Principal
from broker.topics import ACCESS, CONSENT, QUARANTINE, SCHEMA_QUARANTINE, party_of_ingress

log = structlog.get_logger("accord.worker")


class Processor:
    """Routes each input record to its topic's chain and applies what the chain produced."""

    def __init__(self, services: Services, outbox: Outbox, *, checkpoint_every: int = 1000) -> None:
        self.services = services
        self.outbox = outbox
        self._chains: dict[str, Sequence[Stage]] = {
            "ingress": ingress_chain(services),
            CONSENT: consent_chain(services),
            ACCESS: access_chain(services),
        }
        self._checkpoint_every = checkpoint_every
        self._since_checkpoint = 0

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
        chain = self._chains.get("ingress" if party_of_ingress(topic) else topic)
        if not value:
            outcome = Outcome(Verdict.QUARANTINE, "malformed", "read", ())
        elif chain is None:
            outcome = Outcome(Verdict.QUARANTINE, "unknown-topic", "route", ())
        else:
            outcome = run_chain(chain, work)
        effects = list(outcome.effects)
        if outcome.verdict is Verdict.QUARANTINE:
            effects += self._quarantined(work, outcome.reason or "unknown", outcome.stage)
        out = self.outbox.apply(effects)
        self._since_checkpoint += 1
        if self._since_checkpoint >= self._checkpoint_every:
            out += self.checkpoint()
        return out

    def policy_loaded(self, policy: Policy, *, source: str) -> list[OutRecord]:
        """Put a (new) bundle in force; audited as ``policy_loaded``, head included."""
        self.services.policy = policy
        metrics = self.outbox.metrics
        metrics.policy_version.clear()
        metrics.policy_version.labels(version=policy.version).set(1)
        parties, agreements, clauses = policy.counts
        loaded = Audit(
            AuditKind.POLICY_LOADED,
            data={
                "version": policy.version,
                "source": source,
                "parties": parties,
                "agreements": agreements,
                "clauses": clauses,
            },
        )
        return self.outbox.apply([loaded]) + self.outbox.head()

    def checkpoint(self) -> list[OutRecord]:
        """Sign the chain's head now."""
        self._since_checkpoint = 0
        return self.outbox.checkpoint()

    def consumed(self, offsets: dict[tuple[str, int], int]) -> list[OutRecord]:
        """The next offsets to read, then the chain's head: the last of each transaction."""
        moved = [SetOffset(topic, p, o) for (topic, p), o in offsets.items()]
        return self.outbox.apply(moved) + self.outbox.head()

    def _quarantined(self, work: Work, reason: str, stage: str) -> list[Effect]:
        """The raw record, sealed to governance for IG officers, and its audit record."""
        digest = hashlib.sha256(work.value).hexdigest()[:32]
        where = {"topic": work.topic, "partition": work.partition, "offset": work.offset}
        held = {
            "reason": reason,
            "stage": stage,
            **where,
            "digest": digest,
            "value": base64.b64encode(work.value).decode("ascii"),
            "headers": [[k, base64.b64encode(v).decode("ascii")] for k, v in work.headers],
        }
        log.warning("quarantined", reason=reason, stage=stage, **where)
        qid = f"q-{work.topic}-{work.partition}-{work.offset}"
        return [
            self.services.sealed(
                held,
                event_id=qid,
                recipient=Principal.GOVERNANCE,
                schema=SCHEMA_QUARANTINE,
                topic=QUARANTINE,
            ),
            Audit(
                AuditKind.QUARANTINED,
                event_id=work.opened.event_id if work.opened else None,
                party=work.sender,
                data={"reason": reason, "stage": stage, **where, "digest": digest},
            ),
        ]


def build_processor(
    *,
    policy: Policy,
    keys: KeyResolver,
    linkage_key: bytes,
    state: WorkerState,
    chain: ChainWriter,
    clock: Callable[[], datetime],
    envelope: EnvelopeSettings,
    metrics: Metrics,
    checkpoint_every: int = 1000,
) -> Processor:
    """A processor with its services and outbox, from the worker's keys and state."""
    services = Services(
        policy=policy,
        keys=keys,
        linker=Linker(linkage_key),
        state=state,
        clock=clock,
        envelope=envelope,
        # Keyed apart from subject keys: knowing one reveals nothing of the other.
        pseudonym_key=hmac.new(linkage_key, b"accord/pseudonym/v1", hashlib.sha256).digest(),
    )
    outbox = Outbox(
        chain=chain,
        signer=KeystoreAuditSigner(keys, Principal.WORKER),
        state=state,
        sealer=services.sealer,
        metrics=metrics,
    )
    return Processor(services, outbox, checkpoint_every=checkpoint_every)
