"""Reading ``accord.audit`` itself: every committed message (``broker.kafka``'s
``read_retained``), and the chains in it that their writers signed, as the indexer would take
them (``accord audit verify --from-topic`` and a console's own appends read it this way).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from broker.audit import (
    GENESIS,
    AuditRecord,
    CheckpointVerifier,
    chain_writer,
    may_write,
    read_record,
)
from broker.governance._signed import SignedTip, misplaced
from broker.kafka import KafkaClients, read_retained
from broker.topics import AUDIT


@dataclass(frozen=True, slots=True)
class TopicMessage:
    key: bytes | None
    value: bytes | None
    partition: int
    offset: int


async def read_topic(
    kafka: KafkaClients, topic: str = AUDIT, *, start: dict[int, int] | None = None
) -> list[TopicMessage]:
    """Every committed message of ``topic`` now (from ``start`` offsets), in topic order."""
    start_at = {(topic, p): o for p, o in (start or {}).items()}
    records = await read_retained(kafka, [topic], start=start_at)
    out = [TopicMessage(r.key, r.value, r.partition, r.offset) for r in records]
    out.sort(key=lambda m: (m.partition, m.offset))
    return out


@dataclass
class TopicChains:
    """The topic's chains as their writers signed them, and what was left out."""

    chains: dict[str, list[AuditRecord]] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)  # by reason
    unsigned: int = 0  # records after their chain's newest checkpoint: not vouched for yet
    #: Each chain's checkpoints that covered records: (seq, partition, offset), in order; an
    #: index that has read a partition past one must hold its chain at least that far.
    signed_at: dict[str, list[tuple[int, int, int]]] = field(default_factory=dict)


def signed_chains(
    messages: Sequence[TopicMessage], verifier: CheckpointVerifier, *, partitions: int | None = None
) -> TopicChains:
    """Each chain's records that a checkpoint signed by its writer covers, in order.

    ``partitions``: the topic's, so that a record away from its chain's partition is set
    aside (``misplaced``); read_topic's callers pass ``partition_count``.

    What the indexer would take, read straight from the topic: anything nobody signed is
    counted in ``refused`` and left out, so a forgery cannot make a genuine chain fail;
    ``ChainBroken`` is raised only on signed evidence that history is missing.
    """
    out = TopicChains()
    tips: dict[str, SignedTip[int]] = {}
    for m in messages:
        try:
            rec = read_record(m.value or b"")
        except ValueError:
            out.refused["undecodable"] += 1
            continue
        if not may_write(rec.chain, rec.kind):
            out.refused[
                "foreign-chain" if chain_writer(rec.chain) is None else "kind-not-allowed"
            ] += 1
            continue
        if (reason := misplaced(m.key, rec.chain, m.partition, partitions)) is not None:
            out.refused[reason] += 1
            continue
        tip = tips.get(rec.chain)
        if tip is None:
            tip = tips[rec.chain] = SignedTip(rec.chain, -1, GENESIS, verifier)
        if rec.seq <= tip.seq:
            out.refused["conflicts-with-indexed"] += 1  # the signed record of that seq came first
            continue
        offered = tip.offer(rec, m.offset)
        out.chains.setdefault(rec.chain, []).extend(r for r, _ in offered.covered)
        if offered.covered:
            # The covering checkpoint is the last covered record: this message.
            out.signed_at.setdefault(rec.chain, []).append((rec.seq, m.partition, m.offset))
        for refused in offered.refused:
            out.refused[refused.reason] += 1
    out.unsigned = sum(len(t.waiting) for t in tips.values())
    out.chains = {c: recs for c, recs in out.chains.items() if recs}
    return out
