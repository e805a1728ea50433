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
from broker.envelope import DEK_BUNDLE_HEADER, KeyResolver, claimed_signer, read_header
from broker.errors import ConfigError, EnvelopeError
from broker.kafka import header_key_bytes, undecodable
from broker.linkage import Linker
from broker.pipeline._access import access_chain
from broker.pipeline._consent import consent_chain, recall, recall_due
from broker.pipeline._effects import (
    Audit,
    ConsentShare,
    Effect,
    OutRecord,
    RetireLegacyShares,
    SetOffset,
    SetShares,
)
from broker.pipeline._ingress import ingress_chain
from broker.pipeline._metrics import Metrics
from broker.pipeline._outbox import Outbox
from broker.pipeline._services import Services
from broker.pipeline._stages import Outcome, Stage, Verdict, Work, is_uuid, run_chain
from broker.pipeline._state import WorkerState, state_mac_key
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
            "ingress": ingress_chain(services, outbox.metrics),
            CONSENT: consent_chain(services, outbox.metrics),
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
        headers: Sequence[tuple[str, bytes | None]],
        *,
        at: datetime,
        key: bytes | None = None,
        partitions: int = 0,
    ) -> list[OutRecord]:
        # A null header value is never Accord's (every header it writes has bytes); the
        # quarantine copy keeps it as null.
        clean = [(k, v) for k, v in headers if v is not None]
        work = Work(topic, partition, offset, value or b"", clean, at, key, partitions)
        chain = self._chains.get("ingress" if party_of_ingress(topic) else topic)
        if (unfit := unreadable(value, headers)) is not None:
            outcome = Outcome(Verdict.QUARANTINE, unfit, "read", ())
        elif chain is None:
            outcome = Outcome(Verdict.QUARANTINE, "unknown-topic", "route", ())
        else:
            outcome = run_chain(chain, work)
        effects = list(outcome.effects)
        if outcome.verdict is Verdict.QUARANTINE:
            reason = outcome.reason or "unknown"
            effects += self._quarantined(work, headers, reason, outcome.stage)
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
        metrics.parties(policy.bundle.parties)
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
        return self.outbox.apply([loaded]) + self.checkpoint() + self.outbox.head()

    def checkpoint(self, *, again: bool = False) -> list[OutRecord]:
        """Sign the chain's head now, unless the head is already a checkpoint (or ``again``:
        see ``Outbox.checkpoint``)."""
        self._since_checkpoint = 0
        return self.outbox.checkpoint(again=again)

    def reseal(self, entries: dict[str, bytes]) -> list[OutRecord]:
        """Consent entries sealed to a worker key other than its current one (rotated out,
        or current until a new one appeared), sealed again to the current one: revoking the
        old key then loses none of them (logged as ``state_resealed`` once its transaction
        commits; ``_reseal``)."""
        return self.outbox.reseal(entries)

    def consumed(self, offsets: dict[tuple[str, int], int]) -> list[OutRecord]:
        """Recalls due, the next offsets to read, a signed checkpoint, then the chain's head:
        the last of each transaction.

        One signature per transaction, so nothing the worker committed waits for a signature
        longer than its own transaction: IG officers see a record once a checkpoint signed
        by its chain's writer covers it (docs/governance.md).
        """
        moved = [SetOffset(topic, p, o) for (topic, p), o in offsets.items()]
        return self.recalls() + self.outbox.apply(moved) + self.checkpoint() + self.outbox.head()

    def recalls(self) -> list[OutRecord]:
        """Withdrawal notices for this task's shares that a withdrawal now recalls."""
        return self.outbox.apply(recall(self.services, self.services.state))

    def recall_due(self) -> bool:
        """Whether ``recalls`` has a withdrawal to pass on (see ``_consent.recall_due``)."""
        return recall_due(self.services.state)

    def adopt(self, legacy: dict[str, list[ConsentShare]]) -> list[OutRecord]:
        """Take on the shares an older, single-worker Accord recorded, retiring its entries."""
        state = self.services.state
        effects: list[Effect] = []
        for key, shares in sorted(legacy.items()):
            merged = tuple(dict.fromkeys([*state.shares.get(key, []), *shares]))
            effects += [SetShares(key, merged), RetireLegacyShares(key)]
        return self.outbox.apply(effects)

    def _quarantined(
        self,
        work: Work,
        headers: Sequence[tuple[str, bytes | None]],
        reason: str,
        stage: str,
    ) -> list[Effect]:
        """The raw record, sealed to governance for IG officers, and its audit record.

        The copy is bounded (``held_copy``) so that a record as large as the ingress topic
        accepts still makes a quarantine record the quarantine topic accepts; the digest and
        size are of the whole value, and the original stays on its topic until retention.
        """
        digest = hashlib.sha256(work.value).hexdigest()[:32]
        where = {"topic": work.topic, "partition": work.partition, "offset": work.offset}
        facts = {"reason": reason, "stage": stage, **where, "digest": digest,
                 "size": len(work.value)}  # fmt: skip
        named = _logged_id(work, reason)
        log.warning("quarantined", reason=reason, stage=stage, **where, **named)
        effects: list[Effect] = []
        sealer = self.services.sealer
        if not sealer.can_sign():
            raise ConfigError(
                "the worker has no live signing key (revoked or expired): nothing can be "
                "sealed; give it a new key (accord keys rotate) and a new directory"
            )
        if sealer.can_seal_to(Principal.GOVERNANCE):
            effects.append(
                self.services.sealed(
                    {**facts, **held_copy(work.value, headers, kafka_key=work.key)},
                    event_id=f"q-{work.topic}-{work.partition}-{work.offset}",
                    recipient=Principal.GOVERNANCE,
                    schema=SCHEMA_QUARANTINE,
                    topic=QUARANTINE,
                )
            )
        else:  # audited all the same; the original is still on its topic
            log.error("quarantine_copy_not_sealed", why="no live governance key", **where)
            facts["held"] = False
        effects.append(
            Audit(
                AuditKind.QUARANTINED,
                # The envelope's id only if it is a UUID (it is the sender's to choose) and
                # authenticated: opened, or a replay (refused after its header verified).
                event_id=str(named["event_id"]) if named.get("event_id_authenticated") else None,
                party=work.sender,
                data={**facts, **_signer_of(work, headers, stage)},
            )
        )
        return effects


def _signer_of(
    work: Work, headers: Sequence[tuple[str, bytes | None]], stage: str
) -> dict[str, str | None]:
    """Which signing key the record is of, for "which records did this key sign?" after a
    key is stolen: ``signer_key_id`` if the envelope opened (its signature verified); if it
    was refused while opening, ``claimed_signer_key_id``, the id its DEK bundle names, NOT
    verified (a forgery names whatever key it likes; null when there is no bundle to read).
    Neither for a record refused before opening was tried. A key id is 32 hex digits of a
    public key's fingerprint (``parse_bundle`` reads them as bytes): no one's personal data.
    """
    if work.opened is not None:
        return {"signer_key_id": work.opened.signer_key_id}
    if stage != "open":
        return {}
    bundles = [v for k, v in headers if k == DEK_BUNDLE_HEADER]
    if len(bundles) != 1 or bundles[0] is None:
        return {"claimed_signer_key_id": None}
    try:
        claimed: str | None = claimed_signer(bundles[0])[1]
    except EnvelopeError:  # not a bundle: nothing claimed
        claimed = None
    return {"claimed_signer_key_id": claimed}


def _logged_id(work: Work, reason: str) -> dict[str, object]:
    """The envelope's event id, for the operator to name to the agency that must send the
    record again, if it is a canonical UUID: the id is the sender's to choose, and any other
    text could spell a name. Before the envelope opened (a key rejected, a bad signature) the
    id is read from its routing header unauthenticated (``event_id_authenticated`` false):
    anyone may have written it. A replay is refused after its header (the AEAD's associated
    data) verified, so its id is the sender's own."""
    if work.opened is not None:
        event_id, authenticated = work.opened.event_id, True
    else:
        try:
            event_id, authenticated = read_header(work.value).event_id, reason == "replay"
        except EnvelopeError:
            return {}
    if not is_uuid(event_id):
        return {}
    return {"event_id": event_id, "event_id_authenticated": authenticated}


def unreadable(value: bytes | None, headers: Sequence[tuple[str, bytes | None]]) -> str | None:
    """Why no chain may take a record (its quarantine reason), or None if one may."""
    if not value or any(v is None for _, v in headers):
        return "malformed"
    if any(undecodable(k) for k, _ in headers):  # only the loop's slow path reads these
        return "undecodable-header"
    return None


# What a quarantine record copies of its input, at most: with base64 and the envelope, well
# under a producer batch (256 KiB) and the quarantine topic's message size, whatever came in.
VALUE_COPY_LIMIT = 64 * 1024
HEADERS_COPY_LIMIT = 16 * 1024
KEY_COPY_LIMIT = 1024


def held_copy(
    value: bytes, headers: Sequence[tuple[str, bytes | None]], *, kafka_key: bytes | None = None
) -> dict[str, object]:
    """A bounded copy of a record for IG officers: the value's first bytes, the headers that
    fit (a null value kept as null), the Kafka key's first bytes (null kept as null: an
    ``unkeyed`` or ``wrong-partition`` record is told by it), and whether anything was left
    out."""
    copied: list[list[str | None]] = []
    budget = HEADERS_COPY_LIMIT
    for key, hv in headers:
        cost = len(key) + len(hv or b"")
        if cost > budget:
            break
        budget -= cost
        # A key that was not UTF-8 is held readable, its bytes escaped (\xff): JSON cannot
        # carry the lone surrogates it was read as.
        held = header_key_bytes(key).decode("utf-8", "backslashreplace")
        copied.append([held, None if hv is None else base64.b64encode(hv).decode("ascii")])
    return {
        "value": base64.b64encode(value[:VALUE_COPY_LIMIT]).decode("ascii"),
        "headers": copied,
        "key": None
        if kafka_key is None
        else base64.b64encode(kafka_key[:KEY_COPY_LIMIT]).decode("ascii"),
        "truncated": len(value) > VALUE_COPY_LIMIT
        or len(copied) < len(headers)
        or len(kafka_key or b"") > KEY_COPY_LIMIT,
    }


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
    services = build_services(
        policy=policy,
        keys=keys,
        linkage_key=linkage_key,
        state=state,
        clock=clock,
        envelope=envelope,
    )
    outbox = Outbox(
        chain=chain,
        signer=KeystoreAuditSigner(keys, Principal.WORKER),
        state=state,
        sealer=services.sealer,
        metrics=metrics,
        state_mac_key=state_mac_key(linkage_key),
    )
    return Processor(services, outbox, checkpoint_every=checkpoint_every)


def build_services(
    *,
    policy: Policy,
    keys: KeyResolver,
    linkage_key: bytes,
    state: WorkerState,
    clock: Callable[[], datetime],
    envelope: EnvelopeSettings,
) -> Services:
    """What the stages consult, from the worker's keys and state."""
    return Services(
        policy=policy,
        keys=keys,
        linker=Linker(linkage_key),
        state=state,
        clock=clock,
        envelope=envelope,
        # Keyed apart from subject keys: knowing one reveals nothing of the other.
        pseudonym_key=hmac.new(linkage_key, b"accord/pseudonym/v1", hashlib.sha256).digest(),
    )
