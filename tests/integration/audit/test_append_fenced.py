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
from broker.errors import Fenced
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
