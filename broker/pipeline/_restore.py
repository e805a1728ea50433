"""Rebuilding the worker's state from its committed changelog (``accord.worker.state``)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog

from broker.envelope import KeyResolver, Opener
from broker.errors import EnvelopeError, TransportError
from broker.kafka import Consumer, KafkaClients, stop_quietly, translated
from broker.pipeline._state import WorkerState
from broker.principals import Principal
from broker.topics import STATE

log = structlog.get_logger("accord.worker")


class _AlwaysNew:
    """Restoring state re-reads records already processed: replay does not apply."""

    def first_sighting(self, event_id: str) -> bool:  # noqa: ARG002  # protocol signature
        return True


async def restore_state(kafka: KafkaClients, keys: KeyResolver) -> WorkerState:
    """Rebuild the worker's state from the committed changelog, start to end."""
    state = WorkerState()
    opener = Opener(Principal.WORKER, keys, replay_guard=_AlwaysNew())
    # Without a group, a consumer subscribed to a topic is assigned all its partitions.
    consumer = kafka.consumer(STATE, client_id="accord-worker-restore")
    try:
        async with translated(f"restoring worker state from {STATE}"):
            await _read_all(consumer, state, opener)
    finally:
        await stop_quietly(consumer)
    return state


async def _read_all(consumer: Consumer, state: WorkerState, opener: Opener) -> None:
    await consumer.start()
    if STATE not in await consumer.topics():
        # Never "no state": starting without the changelog would forget every replay id.
        raise TransportError(f"the state changelog {STATE} does not exist")
    for _ in range(100):
        tps = sorted(consumer.assignment())
        if tps:
            break
        await asyncio.sleep(0.1)
    else:
        raise TransportError(f"no partitions of {STATE} could be assigned")
    await consumer.seek_to_beginning(*tps)
    end = await consumer.end_offsets(tps)
    remaining = {tp for tp in tps if end[tp] > 0}
    while remaining:
        batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=5000)
        for msgs in batch.values():
            for m in msgs:
                _apply(state, opener, m.key, m.value, m.headers)
        for tp in list(remaining):
            if await consumer.position(tp) >= end[tp]:
                remaining.discard(tp)


def _apply(
    state: WorkerState,
    opener: Opener,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]],
) -> None:
    if key is None or value is None:
        return
    name = key.decode()
    if name.startswith("c:"):
        try:
            value = opener.open_kafka(value, headers, topic=STATE).payload
        except EnvelopeError as exc:
            # Fail closed: the subject's consent is treated as missing, never guessed.
            log.error("state_entry_unopenable", key_kind="c", reason=exc.reason)  # noqa: TRY400  # the traceback would add nothing
            return
    state.restore(name, value)
