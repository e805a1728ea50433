"""Two writers of one console chain on a real Kafka: the one taken over stays taken over, so
the other goes on writing; and nothing of the fenced producer is left for asyncio to report
as never retrieved."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any

import pytest

from broker.audit import AuditKind, KeystoreAuditSigner, KeystoreAuditVerifier
from broker.errors import Fenced, TransportError
from broker.governance import (
    ChainAppender,
    open_store,
    read_topic,
    record_query,
    signed_chains,
    verify_records,
)
from broker.keys import FileKeyStore
from broker.principals import Principal
from tests.kafka_helpers import clients, create_topics, unique_topic

pytestmark = pytest.mark.kafka

CHAIN = "console:ig-1/second"


async def test_a_writer_taken_over_stays_so_and_leaves_no_unretrieved_future(
    audit_home: Path, keys: FileKeyStore, verifier: KeystoreAuditVerifier, kafka_bootstrap: str
) -> None:
    topic = unique_topic("audit")
    await create_topics(kafka_bootstrap, [topic])
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    store = open_store(None, home=audit_home)
    first, second = (
        ChainAppender(store, kafka=clients(kafka_bootstrap), chain=CHAIN, topic=topic,
                      signer=KeystoreAuditSigner(keys, Principal.CONSOLE), verifier=verifier)
        for _ in range(2)
    )  # fmt: skip
    try:
        await record_query(first, officer="ig.jo", page="dashboard")
        await record_query(second, officer="ig.sam", page="dashboard")  # fences the first
        refused: list[str] = []
        for _ in range(2):
            try:
                await record_query(first, officer="ig.jo", page="chains")
            except Fenced as exc:
                refused.append(str(exc))
        assert len(refused) == 2
        assert all("another process took over this transactional id" in r for r in refused)
        # The first never took the chain back (a new producer would have fenced this one).
        for page in ("overrides", "agreements"):
            await record_query(second, officer="ig.sam", page=page)
    finally:
        await first.close()
        await second.close()
        store.close()
    chains = signed_chains(await read_topic(clients(kafka_bootstrap), topic), verifier)
    assert verify_records(chains, verifier).chains == 1
    pages = [r.data["page"] for r in chains.chains[CHAIN] if r.kind is AuditKind.CONSOLE_QUERY]
    assert pages == ["dashboard", "dashboard", "overrides", "agreements"]
    del first, second
    gc.collect()  # a future nobody retrieved is reported when it is collected
    await asyncio.sleep(0)
    loop.set_exception_handler(None)
    assert [c.get("message") for c in reported] == []


class _Suspended:
    """A producer whose second send of its first transaction waits ``pause`` seconds first:
    the first record has reached Kafka, so the transaction is open, and outlives its timeout
    meanwhile, as on a machine suspended in the middle of an append."""

    def __init__(self, producer: Any, pause: float) -> None:
        self._producer, self._pause, self._sends = producer, pause, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)

    async def send(self, *args: Any, **kwargs: Any) -> Any:
        self._sends += 1
        if self._sends == 2:
            await asyncio.sleep(self._pause)
        return await self._producer.send(*args, **kwargs)


class _SuspendedOnce:
    """Kafka clients whose first transactional producer is ``_Suspended``."""

    def __init__(self, kafka: Any, pause: float) -> None:
        self._kafka, self._pause, self.made = kafka, pause, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kafka, name)

    def transactional_producer(self, *args: Any, **kwargs: Any) -> Any:
        self.made += 1
        producer = self._kafka.transactional_producer(*args, **kwargs)
        return _Suspended(producer, self._pause) if self.made == 1 else producer


async def test_a_transaction_kafka_aborted_for_outliving_its_timeout_is_not_a_takeover(
    audit_home: Path, keys: FileKeyStore, verifier: KeystoreAuditVerifier, kafka_bootstrap: str
) -> None:
    """Kafka's coordinator aborts a transaction older than the producer's transaction timeout
    (2 s here) and fences the producer as it does; aiokafka says ProducerFenced, as for a
    takeover. The writer says Kafka aborted it, is not fenced for good, and writes on."""
    topic = unique_topic("audit")
    await create_topics(kafka_bootstrap, [topic])
    store = open_store(None, home=audit_home)
    # The coordinator looks for timed-out transactions every 10 s (Kafka's default).
    kafka = _SuspendedOnce(clients(kafka_bootstrap), pause=13.0)
    writer = ChainAppender(
        store, kafka=kafka, chain=CHAIN, topic=topic,  # type: ignore[arg-type]  # a wrapper
        signer=KeystoreAuditSigner(keys, Principal.CONSOLE), verifier=verifier,
        transaction_timeout=2.0, within=30.0,
    )  # fmt: skip
    try:
        with pytest.raises(TransportError) as failed:
            await record_query(writer, officer="ig.jo", page="dashboard")
        assert not isinstance(failed.value, Fenced)
        assert "took longer than its transaction timeout (2 s)" in str(failed.value)
        await record_query(writer, officer="ig.jo", page="overrides")  # a new producer
        assert kafka.made == 2
    finally:
        await writer.close()
        store.close()
    chains = signed_chains(await read_topic(clients(kafka_bootstrap), topic), verifier)
    assert verify_records(chains, verifier).chains == 1
    pages = [r.data["page"] for r in chains.chains[CHAIN] if r.kind is AuditKind.CONSOLE_QUERY]
    assert pages == ["overrides"]  # the aborted transaction's record was never committed
