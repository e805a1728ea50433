"""A console chain's appender over a fake Kafka: each append is given up within its bound (an
outage, never a takeover), and a fence is a takeover only when Kafka's own abort of a
transaction that outlived its timeout cannot be behind it (the real Kafka's:
tests/integration/audit/test_append_fenced.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import ProducerFenced

from broker.audit import GENESIS, KeystoreAuditSigner, KeystoreAuditVerifier
from broker.errors import Fenced, TransportError
from broker.governance import ChainAppender, record_query
from broker.governance import _append as append_module
from broker.keys import FileKeyStore
from broker.principals import Principal

CHAIN = "console:ig-1"


class Seconds:
    """The appender's elapsed-time clock, moved on by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeProducer:
    """A transactional producer whose start or commit waits for ever (Kafka away), or whose
    commit is fenced after ``fenced_after`` seconds on ``seconds``."""

    def __init__(
        self, seconds: Seconds, *, start_hangs: bool = False, commit_hangs: bool = False,
        fenced_after: float | None = None,
    ) -> None:  # fmt: skip
        self.seconds = seconds
        self.start_hangs, self.commit_hangs, self.fenced_after = (
            start_hangs,
            commit_hangs,
            fenced_after,
        )
        self.sent: list[bytes] = []
        self.committed = 0
        self.stopped = False

    async def start(self) -> None:
        if self.start_hangs:
            await asyncio.Event().wait()

    async def begin_transaction(self) -> None:
        pass

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:  # noqa: ARG002  # the seam's signature
        self.sent.append(value)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def commit_transaction(self) -> None:
        if self.commit_hangs:
            await asyncio.Event().wait()
        if self.fenced_after is not None:
            self.seconds.now += self.fenced_after
            raise ProducerFenced()
        self.committed += 1

    async def stop(self) -> None:
        self.stopped = True


class FakeKafka:
    """Hands out the producers given, in turn, and notes what each was asked for."""

    bootstrap = "k:9092"

    def __init__(self, *producers: FakeProducer) -> None:
        self.producers = list(producers)
        self.asked: list[dict[str, Any]] = []

    def transactional_producer(self, transactional_id: str, client_id: str, **tuning: Any) -> Any:
        self.asked.append({"transactional_id": transactional_id, "client_id": client_id, **tuning})
        return self.producers.pop(0)


@pytest.fixture(autouse=True)
def empty_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    """No head to read: every chain starts at genesis."""

    async def head(*_: object, **__: object) -> tuple[int, str]:
        return -1, GENESIS

    monkeypatch.setattr(append_module, "chain_head_on_topic", head)


def appender(keys: FileKeyStore, kafka: FakeKafka, seconds: Seconds, **kw: Any) -> ChainAppender:
    return ChainAppender(
        None,  # type: ignore[arg-type]  # read only by the head read, faked above
        kafka=kafka, chain=CHAIN, signer=KeystoreAuditSigner(keys, Principal.CONSOLE),
        verifier=KeystoreAuditVerifier(keys), elapsed_clock=seconds, **kw,  # type: ignore[arg-type]  # a fake
    )  # fmt: skip


async def test_a_commit_kafka_does_not_confirm_is_given_up_within_the_bound_and_not_fenced(
    keys: FileKeyStore,
) -> None:
    """An outage: a TransportError saying so, the producer abandoned, and the next append,
    on a new producer, is written."""
    seconds = Seconds()
    hanging, healthy = FakeProducer(seconds, commit_hangs=True), FakeProducer(seconds)
    writer = appender(keys, FakeKafka(hanging, healthy), seconds, within=0.2)
    with pytest.raises(TransportError, match=r"Kafka did not commit the append within 0.2 s") as e:
        await asyncio.wait_for(record_query(writer, officer="ig.jo", page="dashboard"), 5)
    assert not isinstance(e.value, Fenced)
    assert hanging.stopped
    assert hanging.committed == 0
    await record_query(writer, officer="ig.jo", page="overrides")
    assert healthy.committed == 1
    await writer.close()


async def test_a_producer_kafka_never_gives_an_id_is_given_up_within_the_bound(
    keys: FileKeyStore,
) -> None:
    seconds = Seconds()
    stuck, healthy = FakeProducer(seconds, start_hangs=True), FakeProducer(seconds)
    writer = appender(keys, FakeKafka(stuck, healthy), seconds, within=0.2)
    with pytest.raises(TransportError, match=r"Kafka did not start a producer within 0.2 s"):
        await asyncio.wait_for(record_query(writer, officer="ig.jo", page="dashboard"), 5)
    assert stuck.stopped
    await record_query(writer, officer="ig.jo", page="dashboard")
    assert healthy.committed == 1
    await writer.close()


async def test_a_fence_after_the_append_outlived_the_transaction_timeout_is_an_outage(
    keys: FileKeyStore,
) -> None:
    """Kafka's coordinator fences a producer whose transaction it aborted for its age (a
    laptop suspended mid-append, an event loop stalled): the writer is not taken over, says
    why in one line, and the next append takes a new producer and is written."""
    seconds = Seconds()
    aborted, healthy = FakeProducer(seconds, fenced_after=61), FakeProducer(seconds)
    writer = appender(keys, FakeKafka(aborted, healthy), seconds)
    with pytest.raises(
        TransportError, match=r"took longer than its transaction timeout \(60 s\)"
    ) as e:
        await record_query(writer, officer="ig.jo", page="dashboard")
    assert not isinstance(e.value, Fenced)
    assert "\n" not in str(e.value)
    assert aborted.stopped
    await record_query(writer, officer="ig.jo", page="dashboard")
    assert healthy.committed == 1
    await writer.close()


async def test_a_fence_well_within_the_transaction_timeout_is_a_takeover_and_stays_so(
    keys: FileKeyStore,
) -> None:
    """Only another writer's start can fence a transaction that young: every later append
    is refused at once, and no new producer takes the chain back."""
    seconds = Seconds()
    taken_over = FakeProducer(seconds, fenced_after=1)
    kafka = FakeKafka(taken_over, FakeProducer(seconds))
    writer = appender(keys, kafka, seconds)
    with pytest.raises(Fenced, match="another process took over this transactional id"):
        await record_query(writer, officer="ig.jo", page="dashboard")
    with pytest.raises(Fenced):
        await record_query(writer, officer="ig.jo", page="overrides")
    assert len(kafka.asked) == 1
    await writer.close()


async def test_a_fence_just_short_of_the_transaction_timeout_is_still_a_takeover(
    keys: FileKeyStore,
) -> None:
    seconds = Seconds()
    writer = appender(keys, FakeKafka(FakeProducer(seconds, fenced_after=59.5)), seconds)
    with pytest.raises(Fenced):
        await record_query(writer, officer="ig.jo", page="dashboard")
    await writer.close()


async def test_producers_ask_for_the_timeout_the_decision_counts_with_and_give_up_well_before(
    keys: FileKeyStore,
) -> None:
    """The producer's transaction timeout is the one the fence decision counts with, and an
    append is given up long before Kafka would abort its transaction."""
    seconds = Seconds()
    kafka = FakeKafka(FakeProducer(seconds))
    writer = appender(keys, kafka, seconds)
    await record_query(writer, officer="ig.jo", page="dashboard")
    await writer.close()
    [asked] = kafka.asked
    assert asked["transactional_id"] == f"accord-audit-{CHAIN}"
    assert asked["transaction_timeout_ms"] == append_module.TRANSACTION_TIMEOUT_S * 1000
    assert 3 * append_module.APPEND_WITHIN_S <= append_module.TRANSACTION_TIMEOUT_S
