"""Every SDK send is bounded in time, and one given up on is never committed or sent again."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import TopicPartition
from structlog.testing import capture_logs

from broker.config import KafkaSettings
from broker.errors import SendUnconfirmed, TransportError, UsageError
from broker.kafka import abandon
from broker.kafka._errors import Abandoned
from broker.sdk import _bounded as bounded_module
from broker.sdk._bounded import BoundedProducer, Outgoing

RECORD = Outgoing("accord.access", b"k", b"v", [])


class FakeProducer:
    """A producer whose sends Kafka takes (``answers``) or never answers; or, with
    ``answers="all but the commit"``, whose commit is handed off and never answered."""

    def __init__(self, answers: bool | str) -> None:
        self.answers = answers
        self.calls: list[str] = []

    async def start(self) -> None:
        self.calls.append("start")

    async def stop(self) -> None:
        self.calls.append("stop")

    async def begin_transaction(self) -> None:
        self.calls.append("begin")

    async def commit_transaction(self) -> None:
        self.calls.append("commit")
        if self.answers == "all but the commit":  # EndTxn sent; its answer never comes
            await asyncio.get_running_loop().create_future()

    async def send(self, topic: str, value: bytes, **_: Any) -> asyncio.Future[Any]:
        self.calls.append("send")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.answers:
            future.set_result((topic, value))
        return future  # else never resolved: Kafka is down and aiokafka retries forever


class FakeKafka:
    bootstrap = "127.0.0.1:1"
    principal = None
    settings = KafkaSettings(bootstrap=bootstrap)

    def __init__(self, *answers: bool | str) -> None:
        self.answers = list(answers)
        self.made: list[FakeProducer] = []
        self.options: list[dict[str, Any]] = []

    def _make(self, **options: Any) -> FakeProducer:
        self.options.append(options)
        self.made.append(FakeProducer(self.answers.pop(0)))
        return self.made[-1]

    def producer(self, client_id: str, **options: Any) -> FakeProducer:  # noqa: ARG002  # the seam's signature
        return self._make(**options)

    def transactional_producer(
        self,
        transactional_id: str,  # noqa: ARG002  # as above
        client_id: str,  # noqa: ARG002
        **options: Any,
    ) -> FakeProducer:
        return self._make(**options)


class SlowKafka(FakeKafka):
    """Kafka answering each record a little later: how many sends await an answer at once."""

    def __init__(self) -> None:
        super().__init__(True)
        self.in_flight = self.most = 0

    def _make(self, **options: Any) -> FakeProducer:
        made = super()._make(**options)
        outer = self

        async def send(topic: str, value: bytes, **_: Any) -> asyncio.Future[Any]:
            made.calls.append("send")
            loop = asyncio.get_running_loop()
            future: asyncio.Future[Any] = loop.create_future()
            outer.in_flight += 1
            outer.most = max(outer.most, outer.in_flight)

            def answer() -> None:
                outer.in_flight -= 1
                future.set_result((topic, value))

            loop.call_later(0.01, answer)
            return future

        made.send = send  # type: ignore[method-assign]
        return made


@pytest.mark.parametrize("transactional", [False, True])
async def test_plain_sends_overlap_and_transactions_go_one_at_a_time(transactional: bool) -> None:
    """An agency publishing many events at once is not held to one round trip each (the
    benchmark's 500 events/s timed out when every send waited for the last); a transaction
    still runs alone on its producer."""
    kafka = SlowKafka()
    txn = "accord.desk.p.sends.1" if transactional else None
    bounded = BoundedProducer(kafka, "c", timeout=5, transactional_id=txn)  # type: ignore[arg-type]
    await bounded.start()
    sent = await asyncio.gather(*(bounded.send("publishing", [RECORD]) for _ in range(20)))
    assert sent == [[("accord.access", b"v")]] * 20
    assert len(kafka.made) == 1  # one producer for all of them
    assert kafka.most == (1 if transactional else 20)
    await bounded.stop()


async def test_a_send_kafka_never_answers_fails_within_the_limit_and_is_never_committed() -> None:
    kafka = FakeKafka(False, True)
    bounded = BoundedProducer(kafka, "c", timeout=0.2, transactional_id="accord.desk.p.acks.1")  # type: ignore[arg-type]
    await bounded.start()
    t0 = time.monotonic()
    with pytest.raises(
        TransportError, match=r"did not answer within 0\.2 s; nothing was written"
    ) as e:
        await bounded.send("publishing to accord.access", [RECORD])
    assert not isinstance(e.value, SendUnconfirmed)  # never committed: surely not written
    assert time.monotonic() - t0 < 1.0
    await asyncio.sleep(0)  # the abandoned producer is closed in the background
    stuck = kafka.made[0]
    assert stuck.calls == ["start", "begin", "send", "stop"]  # never committed
    # The next send has a producer of its own (its start fences the stuck one's transaction).
    assert await bounded.send("publishing to accord.access", [RECORD]) == [("accord.access", b"v")]
    assert kafka.made[1].calls == ["start", "begin", "send", "commit"]
    # A transaction left open by an abandoned producer holds back readers for seconds.
    assert kafka.options[0]["transaction_timeout_ms"] == 10_000
    await bounded.stop()
    assert kafka.made[1].calls[-1] == "stop"


async def test_without_a_transactional_id_a_send_given_up_on_says_kafka_may_have_it() -> None:
    kafka = FakeKafka(False)
    bounded = BoundedProducer(kafka, "c", timeout=0.1)  # type: ignore[arg-type]
    await bounded.start()
    with pytest.raises(SendUnconfirmed, match="not sent again, but Kafka may have received it"):
        await bounded.send("publishing to accord.ingress.wmp", [RECORD])
    await bounded.stop()
    assert kafka.made[0].calls == ["start", "send", "stop"]


async def test_a_send_before_start_or_a_limit_of_nothing_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        BoundedProducer(FakeKafka(), "c", timeout=0)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        await BoundedProducer(FakeKafka(), "c", timeout=1).send("x", [RECORD])  # type: ignore[arg-type]


async def test_a_send_given_up_on_while_kafka_commits_it_is_unconfirmed_not_failed() -> None:
    """Once the commit is handed to aiokafka's sender it cannot be called back: Kafka may
    still commit it, so the caller must not be told nothing was written."""
    kafka = FakeKafka("all but the commit")
    bounded = BoundedProducer(kafka, "c", timeout=0.2, transactional_id="accord.desk.p.acks.1")  # type: ignore[arg-type]
    await bounded.start()
    t0 = time.monotonic()
    with pytest.raises(SendUnconfirmed, match="being committed, and may have been written"):
        await bounded.send("publishing to accord.access", [RECORD])
    assert time.monotonic() - t0 < 1.0
    await bounded.stop()
    assert kafka.made[0].calls == ["start", "begin", "send", "commit", "stop"]


async def test_abandon_fails_a_real_producers_queued_batch_and_ends_its_retrying_sender() -> None:
    """An aiokafka producer with nothing listening at its bootstrap: its sender retries for
    ever, and its batch waits. (``send`` would wait for metadata that never comes, so the
    batch is queued as ``send`` queues it, in the accumulator.)"""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    producer = AIOKafkaProducer(
        bootstrap_servers=f"127.0.0.1:{port}", enable_idempotence=True, acks="all",
        retry_backoff_ms=20,
    )  # fmt: skip
    sender = producer._sender
    # As ``start`` would, after a bootstrap that here cannot happen.
    sender._sender_task = asyncio.create_task(sender._sender_routine())
    sender._sender_task.add_done_callback(sender._fail_all)
    tp = TopicPartition("accord.access", 0)
    delivered = await producer._message_accumulator.add_message(tp, b"k", b"v", timeout=1)
    await asyncio.sleep(0.3)
    assert not sender.sender_task.done()  # retrying, as it would until Kafka came back
    assert not delivered.done()
    t0 = time.monotonic()
    await asyncio.wait_for(abandon(producer), 5)
    assert time.monotonic() - t0 < 1.0
    assert sender.sender_task.done()
    with pytest.raises(Abandoned, match="the producer was abandoned"):
        delivered.result()
    await asyncio.sleep(0.2)  # nothing left to retry it: no task of the producer's runs on
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


def _stuck_producer() -> AIOKafkaProducer:
    """A real aiokafka producer, nothing listening at its bootstrap, holding a batch its
    sender retries for ever: its own ``stop`` waits until Kafka comes back."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    producer = AIOKafkaProducer(
        bootstrap_servers=f"127.0.0.1:{port}", enable_idempotence=True, acks="all",
        retry_backoff_ms=20,
    )  # fmt: skip
    sender = producer._sender
    sender._sender_task = asyncio.create_task(sender._sender_routine())
    sender._sender_task.add_done_callback(sender._fail_all)
    return producer


async def test_a_stop_while_kafka_is_not_answering_is_bounded_and_abandons_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A SIGTERM while a send is still in the producer: stopped within the send timeout and
    the grace, what it held failed (never written later), not waited for until Kafka is back."""
    monkeypatch.setattr(bounded_module, "STOP_GRACE", 0.3)
    producer = _stuck_producer()
    tp = TopicPartition("accord.ingress.wmp", 0)
    delivered = await producer._message_accumulator.add_message(tp, b"k", b"v", timeout=1)
    bounded = BoundedProducer(FakeKafka(), "c", timeout=0.2)  # type: ignore[arg-type]
    bounded._producer, bounded._started = producer, True  # as start makes it
    t0 = time.monotonic()
    with capture_logs() as logs:
        await asyncio.wait_for(bounded.stop(), 5)
    assert time.monotonic() - t0 < 1.5
    assert not bounded.started
    assert producer._sender.sender_task.done()
    with pytest.raises(Abandoned, match="the producer was abandoned"):
        delivered.result()
    assert [e["event"] for e in logs] == ["kafka_producer_abandoned_at_stop"]


async def test_a_stop_with_kafka_answering_closes_the_producer_and_logs_nothing() -> None:
    kafka = FakeKafka(True)
    bounded = BoundedProducer(kafka, "c", timeout=0.2)  # type: ignore[arg-type]
    await bounded.start()
    with capture_logs() as logs:
        await bounded.stop()
    assert kafka.made[0].calls == ["start", "stop"]
    assert logs == []


class QueueingProducer(AIOKafkaProducer):  # type: ignore[misc]  # aiokafka is untyped
    """A real producer whose ``send`` queues as aiokafka's does once it knows the partition's
    leader (which, here, never answers): so abandoning it fails what it holds for real."""

    async def send(self, topic: str, value: bytes, **kw: Any) -> asyncio.Future[Any]:
        tp = TopicPartition(topic, 0)
        future: asyncio.Future[Any] = await self._message_accumulator.add_message(
            tp, kw.get("key"), value, timeout=1
        )
        return future


async def test_a_send_failed_because_another_abandoned_the_producer_is_unconfirmed() -> None:
    """Two requests share the producer; the first's deadline abandons it with the second's
    record already queued (it may be in Kafka): the second is SendUnconfirmed, naming its
    id, not a plain failure saying Kafka did not take it."""
    producer = _stuck_producer()
    producer.__class__ = QueueingProducer
    bounded = BoundedProducer(FakeKafka(), "c", timeout=1.0)  # type: ignore[arg-type]
    bounded._producer, bounded._started = producer, True  # as start makes it
    first = asyncio.create_task(bounded.send("publishing", [RECORD]))
    await asyncio.sleep(0.5)
    t0 = time.monotonic()
    other = Outgoing("accord.ingress.wmp", b"5b0f6c1e-0d0a-4c1e-9d55-0a7c2b1e0002", b"v", [])
    with pytest.raises(SendUnconfirmed, match="may have received it") as e:
        await bounded.send("publishing", [other])
    assert time.monotonic() - t0 < 0.95  # failed by the abandoning, before its own deadline
    assert e.value.event_ids == ("5b0f6c1e-0d0a-4c1e-9d55-0a7c2b1e0002",)
    with pytest.raises(SendUnconfirmed):
        await first
    await bounded.stop()


async def test_a_send_that_fails_before_anything_is_queued_says_nothing_was_written() -> None:
    """Kafka refusing the first record (no metadata, ACLs): a plain TransportError."""
    kafka = FakeKafka(True)
    bounded = BoundedProducer(kafka, "c", timeout=1.0)  # type: ignore[arg-type]
    await bounded.start()

    async def refused(*_: Any, **__: Any) -> asyncio.Future[Any]:
        raise KafkaConnectionError("no broker")

    kafka.made[0].send = refused  # type: ignore[method-assign]
    with pytest.raises(TransportError) as e:
        await bounded.send("publishing", [RECORD])
    assert not isinstance(e.value, SendUnconfirmed)
    await bounded.stop()


async def test_a_send_whose_new_producer_cannot_connect_says_where_once() -> None:
    """A send after an abandoned producer starts a new one: Kafka out of reach then was said
    "publishing: connecting to Kafka: could not reach Kafka: ...", twice over and with no
    address."""
    kafka = FakeKafka(True, True)
    bounded = BoundedProducer(kafka, "c", timeout=1.0)  # type: ignore[arg-type]
    await bounded.start()
    bounded._producer = None  # abandoned by an earlier send's deadline

    async def down() -> None:
        raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 1)]")

    make = kafka._make

    def made_down(**options: Any) -> FakeProducer:
        made = make(**options)
        made.start = down  # type: ignore[method-assign]
        return made

    kafka._make = made_down  # type: ignore[method-assign]
    with pytest.raises(TransportError) as failed:
        await bounded.send("publishing", [RECORD])
    assert str(failed.value) == (
        "publishing: connecting to Kafka at 127.0.0.1:1: no connection, or no answer"
    )
    await bounded.stop()
