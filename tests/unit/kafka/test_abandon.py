"""Abandoning a real aiokafka producer whose sender is retrying a batch against an
unreachable leader: every batch failed, and nothing reported on the event loop afterwards
(aiokafka's accumulator once logged a KeyError traceback for each such batch)."""

from __future__ import annotations

import asyncio
import gc
import socket
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import ProducerFenced
from aiokafka.protocol.metadata import MetadataResponse_v0
from aiokafka.structs import TopicPartition

from broker.kafka import abandon
from broker.kafka._errors import Abandoned

TP = TopicPartition("accord.access", 0)


def _closed_port() -> int:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        return int(free.getsockname()[1])


@pytest.mark.parametrize("idempotent", [False, True])
async def test_abandoning_a_batch_put_back_to_retry_reports_nothing_on_the_loop(
    idempotent: bool,
) -> None:
    """The leader is known (metadata says node 1) but nothing listens there: the sender
    sends the batch, fails to connect and puts it back to retry, as with Kafka gone down
    between two sends."""
    reported: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    producer = AIOKafkaProducer(
        bootstrap_servers=f"127.0.0.1:{_closed_port()}", acks="all", retry_backoff_ms=20,
        enable_idempotence=idempotent,
    )  # fmt: skip
    producer.client.cluster.update_metadata(
        MetadataResponse_v0(
            brokers=[(1, "127.0.0.1", _closed_port())],
            topics=[(0, TP.topic, [(0, TP.partition, 1, [1], [1])])],
        )
    )
    sender, accumulator = producer._sender, producer._message_accumulator
    if idempotent:  # as if Kafka had given it an id before it went away
        producer._txn_manager.set_pid_and_epoch(1, 0)
    # As ``start`` would, after a bootstrap that here cannot happen.
    sender._sender_task = asyncio.create_task(sender._sender_routine())
    sender._sender_task.add_done_callback(sender._fail_all)
    delivered = await accumulator.add_message(TP, b"k", b"v", timeout=1)
    for _ in range(100):  # sent, refused, put back: queued again, with a retry counted
        await asyncio.sleep(0.02)
        if any(b.retry_count for q in accumulator._batches.values() for b in q):
            break
    else:
        pytest.fail("the sender never put the batch back to retry")
    try:
        await asyncio.wait_for(abandon(producer), 5)
        with pytest.raises(Abandoned, match="the producer was abandoned"):
            delivered.result()
        await asyncio.sleep(0.1)  # the futures' callbacks run
    finally:
        loop.set_exception_handler(None)
    assert [c.get("message") for c in reported] == []


async def test_abandoning_a_fenced_transactional_producer_leaves_its_failure_retrieved() -> None:
    """A sender that died fenced leaves the failure in the transaction's end for a commit to
    raise; a producer given up before its commit has none, and asyncio once reported it as
    never retrieved."""
    reported: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    producer = AIOKafkaProducer(
        bootstrap_servers=f"127.0.0.1:{_closed_port()}", transactional_id="accord-audit-t"
    )
    txn = producer._txn_manager
    txn.set_pid_and_epoch(1, 0)
    txn.begin_transaction()
    txn.fatal_error(ProducerFenced())  # what the sender's death does (Sender._fail_all)
    await abandon(producer)
    del producer, txn
    gc.collect()
    await asyncio.sleep(0)
    loop.set_exception_handler(None)
    assert [c.get("message") for c in reported] == []
