"""The Kafka work alone: the worker's own loop, answering each input with no work at all.

``bench_pipeline`` compares the pipeline with raw aiokafka passthrough (one record in, one
out, no transactions). The pipeline must also write about a dozen records per event (the
deliveries, one audit record per candidate, the changelog) in Kafka transactions. This
measures what that costs by itself: the worker's ``TransactionalLoop`` with a stand-in
processor that answers every input with the *real* outputs of a real event, computed once
beforehand. Same topics, keys, sizes and transactions; zero opening, deciding or sealing.
The gap between this floor and raw passthrough is the Kafka design's; the gap between the
pipeline and this floor is Python's work per event.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry

from broker._canonical import canonical_json
from broker.audit import ChainWriter
from broker.config import EnvelopeSettings
from broker.envelope import Sealer
from broker.kafka import KafkaClients
from broker.keys import FileKeyStore
from broker.pipeline._effects import OutRecord
from broker.pipeline._loop import TransactionalLoop
from broker.pipeline._metrics import Metrics
from broker.pipeline._processor import build_processor
from broker.pipeline._state import WorkerState
from broker.pipeline._view import StateView
from broker.policy import Policy
from broker.topics import SCHEMA_EVENT, STATE, deliver, ingress

WATCHED = deliver("sandwell-coord")  # every bench event shares with the co-ordinating team


def templates(
    policy: Policy, keys: FileKeyStore, sender: str, events: Sequence[dict[str, Any]]
) -> list[list[OutRecord]]:
    """Each event's real outputs, from an in-process processor (no Kafka)."""
    now = datetime.now(UTC)
    processor = build_processor(
        policy=policy,
        keys=keys,
        linkage_key=b"k" * 32,
        state=WorkerState(),
        chain=ChainWriter("worker:floor", clock=lambda: now),
        clock=lambda: now,
        envelope=EnvelopeSettings(),
        metrics=Metrics(CollectorRegistry()),
    )
    sealer = Sealer(sender, keys)
    out = []
    for i, e in enumerate(events):
        s = sealer.seal(canonical_json(e), event_id=e["event_id"], recipient="worker",
                        schema=SCHEMA_EVENT, topic=ingress(sender))  # fmt: skip
        records = processor.handle(ingress(sender), 0, i, s.value, s.headers, at=now)
        if any(r.topic == WATCHED for r in records):
            out.append(records)
    return out


class _Replay:
    """Stands in for ``Processor``: each input gets the next template's records, the
    co-ordinating team's delivery keyed by the input's place (``partition:offset``) so the
    publisher, which learns that place from its acknowledgement, can time it."""

    def __init__(self, outputs: list[list[OutRecord]]) -> None:
        self.outbox = SimpleNamespace(metrics=Metrics(CollectorRegistry()))
        self.services = SimpleNamespace(state=WorkerState())
        self._outputs = outputs
        self.handled = 0
        self.first: float | None = None
        self.at_n: dict[int, float] = {}

    def handle(  # Processor.handle's signature, for the worker's own loop
        self,
        topic: str,  # noqa: ARG002  # as Processor.handle
        partition: int,
        offset: int,
        value: bytes | None,  # noqa: ARG002  # as Processor.handle
        headers: Sequence[tuple[str, bytes]],  # noqa: ARG002  # as Processor.handle
        *,
        at: datetime,  # noqa: ARG002  # as Processor.handle
        key: bytes | None = None,  # noqa: ARG002  # as Processor.handle
        partitions: int = 0,  # noqa: ARG002  # as Processor.handle
    ) -> list[OutRecord]:
        template = self._outputs[self.handled % len(self._outputs)]
        self.handled += 1
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        self.at_n[self.handled] = now
        place = _place(partition, offset)
        return [OutRecord(r.topic, place, r.value, r.headers) if r.topic == WATCHED else r
                for r in template]  # fmt: skip

    def recall_due(self) -> bool:
        """No consent is ever filed here, so no withdrawal notice is ever due."""
        return False

    def consumed(self, offsets: dict[tuple[str, int], int]) -> list[OutRecord]:
        """The offsets, as the worker's changelog holds them (the head entry is left out)."""
        return [OutRecord(STATE, f"o:{t}:{p}".encode(), str(o).encode())
                for (t, p), o in offsets.items()]  # fmt: skip


class _Alone:
    """The loop's view of the rest of the group: nobody else, no state to hand over."""

    def __init__(self) -> None:
        self.view = StateView()

    async def caught_up(self) -> None:
        pass

    async def moved(self, within: float) -> None:
        await asyncio.sleep(within)

    def check(self) -> None:
        pass


def _place(partition: int, offset: int) -> bytes:
    return f"{partition}:{offset}".encode()


async def measure(
    kafka: KafkaClients,
    outputs: list[list[OutRecord]],
    *,
    source: str,
    backlog: int,
    n: int,
    payloads: Sequence[bytes],
    rate: float,
    seconds: float,
) -> dict[str, Any]:
    """Drain ``backlog`` records (rate over the first ``n``), then time an offered load."""
    replay = _Replay(outputs)
    tag = uuid.uuid4().hex[:8]
    loop = TransactionalLoop(kafka, client_id="bench-floor", clock=lambda: datetime.now(UTC),
                             handover=_Alone(), open_task=lambda _task, _state: (replay, []),  # type: ignore[arg-type,return-value]  # the stand-in is duck-typed
                             max_batch=100, group=f"bench-floor-{tag}",
                             pattern=f"^{source}$")  # fmt: skip
    await loop.start()
    stop = asyncio.Event()
    running = asyncio.create_task(loop.run(stop))
    try:
        while replay.handled < backlog:
            if running.done():
                running.result()
            await asyncio.sleep(0.05)
        assert replay.first is not None  # handled > 0
        drain_rate = n / (replay.at_n[n] - replay.first)
        latencies = await _offered(kafka, payloads, source, rate, seconds)
    finally:
        stop.set()
        await running
        await loop.stop()
    lat = sorted(latencies)
    return {
        "kafka_floor_events_per_s": round(drain_rate),
        "kafka_floor_latency_p50_ms": _ms(statistics.median(lat)) if lat else None,
        "kafka_floor_latency_p99_ms": _ms(lat[int(len(lat) * 0.99) - 1]) if lat else None,
    }


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


async def _offered(
    kafka: KafkaClients, payloads: Sequence[bytes], source: str, rate: float, seconds: float
) -> list[float]:
    """Publish at ``rate`` with the SDK's producer settings; read as the SDK reads."""
    sent: dict[bytes, float] = {}
    arrived: dict[bytes, float] = {}
    group = f"floor-{uuid.uuid4().hex[:8]}"
    consumer = kafka.consumer(WATCHED, client_id="floor", group=group)
    await consumer.start()
    while await consumer.getmany(timeout_ms=1000):  # skip what earlier phases delivered
        pass
    producer = kafka.producer("floor-publisher")
    await producer.start()
    total = int(rate * seconds)

    async def receive() -> None:
        deadline = None
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            now = time.perf_counter()
            for msgs in batch.values():
                for m in msgs:
                    if m.key is not None:
                        arrived.setdefault(m.key, now)
            if len(sent) == total:  # every publish acknowledged
                if sent.keys() <= arrived.keys():
                    return
                deadline = deadline or now + 30
                if now > deadline:
                    return

    async def send(value: bytes, key: bytes) -> None:
        at = time.perf_counter()
        sent_to = await producer.send_and_wait(source, value, key=key)
        sent[_place(sent_to.partition, sent_to.offset)] = at

    receiver = asyncio.create_task(receive())
    try:
        pending = []
        next_at = time.perf_counter()
        for i in range(total):
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            value = payloads[i % len(payloads)]
            pending.append(asyncio.create_task(send(value, uuid.uuid4().hex.encode())))
            next_at += 1 / rate
        await asyncio.gather(*pending)
        await receiver
    finally:
        await producer.stop()
        await consumer.stop()
    return [arrived[place] - at for place, at in sent.items() if place in arrived]
