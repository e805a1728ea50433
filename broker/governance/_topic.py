"""Reading ``accord.audit`` itself: every committed message, and the chains in it that their
writers signed, as the indexer would take them (``accord audit verify --from-topic`` and a
console's own appends read it this way).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from broker.audit import GENESIS, AuditRecord, CheckpointVerifier, chain_writer, may_write
from broker.errors import TransportError
from broker.governance._signed import SignedTip
from broker.kafka import KafkaClients, stop_quietly, translated
from broker.topics import AUDIT


async def assign(consumer: Any, topic: str) -> list[Any]:
    if topic not in await consumer.topics():
        raise TransportError(f"the topic {topic} does not exist (has a worker run yet?)")
    # Without a group, a consumer subscribed to a topic is assigned all its partitions.
    consumer.subscribe([topic])
    for _ in range(100):
        tps: list[Any] = sorted(consumer.assignment(), key=lambda tp: tp.partition)
        if tps:
            break
        await asyncio.sleep(0.1)
    else:
        raise TransportError(f"no partitions of {topic} could be assigned")
    return tps


async def seek(consumer: Any, tps: list[Any], stored: dict[int, int]) -> None:
    fresh = [tp for tp in tps if tp.partition not in stored]
    if fresh:
        await consumer.seek_to_beginning(*fresh)
    for tp in tps:
        if tp.partition in stored:
            consumer.seek(tp, stored[tp.partition])


async def at_end(consumer: Any, end: dict[Any, int]) -> bool:
    for tp, last in end.items():
        if await consumer.position(tp) < last:
            return False
    return True


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
    consumer = kafka.consumer(client_id="accord-audit-verify", fetch_max_wait_ms=500)
    out: list[TopicMessage] = []
    try:
        async with translated(f"reading {topic} from {kafka.bootstrap}"):
            await consumer.start()
            tps = await assign(consumer, topic)
            await seek(consumer, tps, start or {})
            end = await consumer.end_offsets(tps)
            idle = 0
            while not await at_end(consumer, end) and idle < 30:
                got = await consumer.getmany(*tps, timeout_ms=300, max_records=5000)
                idle = 0 if got else idle + 1
                for msgs in got.values():
                    out += [TopicMessage(m.key, m.value, m.partition, m.offset) for m in msgs]
    finally:
        await stop_quietly(consumer)
    out.sort(key=lambda m: (m.partition, m.offset))
    return out


@dataclass
class TopicChains:
    """The topic's chains as their writers signed them, and what was left out."""

    chains: dict[str, list[AuditRecord]] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)  # by reason
    unsigned: int = 0  # records after their chain's newest checkpoint: not vouched for yet


def signed_chains(messages: Sequence[TopicMessage], verifier: CheckpointVerifier) -> TopicChains:
    """Each chain's records that a checkpoint signed by its writer covers, in order.

    What the indexer would take, read straight from the topic: anything nobody signed is
    counted in ``refused`` and left out, so a forgery cannot make a genuine chain fail;
    ``ChainBroken`` is raised only on signed evidence that history is missing.
    """
    out = TopicChains()
    tips: dict[str, SignedTip[int]] = {}
    for m in messages:
        try:
            rec = AuditRecord.model_validate_json(m.value or b"")
        except ValidationError:
            out.refused["undecodable"] += 1
            continue
        if not may_write(rec.chain, rec.kind):
            out.refused[
                "foreign-chain" if chain_writer(rec.chain) is None else "kind-not-allowed"
            ] += 1
            continue
        tip = tips.get(rec.chain)
        if tip is None:
            tip = tips[rec.chain] = SignedTip(rec.chain, -1, GENESIS, verifier)
        if rec.seq <= tip.seq:
            out.refused["conflicts-with-indexed"] += 1  # the signed record of that seq came first
            continue
        offered = tip.offer(rec, m.offset)
        out.chains.setdefault(rec.chain, []).extend(r for r, _ in offered.covered)
        for refused in offered.refused:
            out.refused[refused.reason] += 1
    out.unsigned = sum(len(t.waiting) for t in tips.values())
    out.chains = {c: recs for c, recs in out.chains.items() if recs}
    return out
