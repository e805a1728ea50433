"""Reviewing a safeguarding override: the reviewer's action is itself an audit record.

The review is never written to the index directly. It is appended to the reviewer's own chain
(``console:<host>``) on ``accord.audit`` through a transactional producer, followed by a signed
checkpoint, and the indexer files it in ``override_reviews`` when it reads it back, so no
review can exist that the tamper-evident log does not hold. The transactional id is derived
from the chain, so a second writer of the same chain fences the first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime

from broker.audit._chain import ChainWriter, CheckpointSigner
from broker.audit._index import read_topic
from broker.audit._record import GENESIS, AuditKind, AuditRecord
from broker.audit._store import AuditStore
from broker.errors import TransportError, UsageError
from broker.topics import AUDIT

MAX_NOTE = 2000


def _utcnow() -> datetime:
    return datetime.now(UTC)


def check_reviewable(
    store: AuditStore, event_id: str, recipient: str, *, reviewed_by: str, note: str
) -> AuditRecord:
    """The override decision to review; ``UsageError`` when there is none or it is reviewed."""
    if not reviewed_by.strip():
        raise UsageError("--by: say who reviewed the override")
    if not note.strip() or len(note) > MAX_NOTE:
        raise UsageError(f"--note: give a review note of 1 to {MAX_NOTE} characters")
    decision = store.find_decision(event_id, recipient)
    if decision is None or decision.data.get("outcome") != "shared_override":
        raise UsageError(
            f"no safeguarding override for event {event_id} to {recipient} in the audit index"
        )
    done = store.review_of(event_id, recipient)
    if done is not None:
        raise UsageError(
            f"the override for event {event_id} to {recipient} was already reviewed "
            f"by {done.reviewed_by} at {done.reviewed_at.isoformat()}"
        )
    return decision


def review_records(
    writer: ChainWriter,
    decision: AuditRecord,
    *,
    reviewed_by: str,
    note: str,
    signer: CheckpointSigner,
) -> list[AuditRecord]:
    """The ``override_reviewed`` record for ``decision`` and the checkpoint that seals it."""
    review = writer.append(
        AuditKind.OVERRIDE_REVIEWED,
        event_id=decision.event_id,
        party=decision.party,
        subject_keys=decision.subject_keys,
        data={
            "reviewed_by": reviewed_by.strip(),
            "note": note.strip(),
            "decision": {"chain": decision.chain, "seq": decision.seq, "hash": decision.hash},
        },
    )
    return [review, writer.checkpoint(signer)]


async def chain_head_on_topic(
    bootstrap: str, chain: str, store: AuditStore, topic: str = AUDIT
) -> tuple[int, str]:
    """The newest record of ``chain`` on the topic: the index's head, then anything newer."""
    head = store.heads().get(chain)
    seq, digest = (head.seq, head.hash) if head is not None else (-1, GENESIS)
    for m in await read_topic(bootstrap, topic, start=store.offsets(topic)):
        if m.key != chain.encode():
            continue
        rec = AuditRecord.model_validate_json(m.value or b"")
        if rec.seq > seq:
            seq, digest = rec.seq, rec.hash
    return seq, digest


async def review_override(
    store: AuditStore,
    *,
    bootstrap: str,
    chain: str,
    event_id: str,
    recipient: str,
    reviewed_by: str,
    note: str,
    signer: CheckpointSigner,
    clock: Callable[[], datetime] = _utcnow,
    topic: str = AUDIT,
) -> AuditRecord:
    """Mark an override reviewed with a note, by writing it to the audit log (then index it)."""
    from aiokafka import AIOKafkaProducer  # noqa: PLC0415  # slow import
    from aiokafka.errors import KafkaError  # noqa: PLC0415

    decision = check_reviewable(store, event_id, recipient, reviewed_by=reviewed_by, note=note)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        transactional_id=f"accord-audit-{chain}",
        enable_idempotence=True,
        acks="all",
    )
    try:
        # Starting the producer fences (and aborts) any earlier writer of this chain, so
        # the head read next cannot move under us.
        await producer.start()
        seq, digest = await chain_head_on_topic(bootstrap, chain, store, topic)
        writer = ChainWriter(chain, clock=clock, next_seq=seq + 1, prev_hash=digest)
        records = review_records(
            writer, decision, reviewed_by=reviewed_by, note=note, signer=signer
        )
        async with producer.transaction():
            for rec in records:
                await producer.send(topic, rec.to_bytes(), key=chain.encode())
    except KafkaError as exc:
        raise TransportError(f"writing the review to {topic}: {type(exc).__name__}") from exc
    except OSError as exc:
        raise TransportError(f"cannot reach Kafka at {bootstrap}") from exc
    finally:
        with contextlib.suppress(KafkaError):
            await producer.stop()
    return records[0]
