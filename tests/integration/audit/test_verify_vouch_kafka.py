"""``accord audit verify`` on a working index, against a real Kafka and an SQLite index: once
the log has been checked against Kafka, a plain verification of the index says when a signed
verification last vouched for it and what has been written since (checked in the index
only), not the alarm it gave an index no verification had ever vouched for."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.audit import AuditRecord
from broker.devkafka import EmbeddedKafka
from broker.keys import FileKeyStore
from broker.linkage import Linker
from broker.topics import AUDIT
from tests.conftest import start_kafka
from tests.kafka_helpers import admin_env, clients, create_topics
from tests.unit.audit.conftest import Run, worker_chain

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture(scope="module")
def own_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedKafka]:
    """A broker of this module's own: ``accord.audit`` on the session's may hold other
    tests' chains, signed by keys this test's index does not know."""
    node: EmbeddedKafka = start_kafka(tmp_path_factory, "kafka-vouch", heap="512m")
    yield node
    node.stop()


async def _produce(bootstrap: str, records: list[AuditRecord]) -> None:
    """The records on ``accord.audit`` as a worker writes them: keyed by chain, in one
    transaction."""
    producer = clients(bootstrap).transactional_producer("test-vouch", "test-audit")
    await producer.start()
    try:
        async with producer.transaction():
            for rec in records:
                await producer.send(AUDIT, rec.to_bytes(), key=rec.chain.encode())
    finally:
        await producer.stop()


def test_after_a_check_against_kafka_a_plain_verify_says_when_it_was_vouched_and_what_since(
    *, own_kafka: EmbeddedKafka, audit_home: Path, keys: FileKeyStore, linker: Linker,
    run_cli: Run, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    bootstrap = str(own_kafka.bootstrap)
    url = f"sqlite:///{audit_home / 'audit.db'}"
    monkeypatch.setenv("ACCORD_AUDIT_DB", url)  # the configured index: its runs vouch
    for name, value in admin_env(bootstrap).items():
        monkeypatch.setenv(name, value)
    records = worker_chain(linker, keys)
    asyncio.run(create_topics(bootstrap, [AUDIT], partitions=3))
    asyncio.run(_produce(bootstrap, records))

    def indexed() -> None:
        code, _, err = run_cli(["audit", "index"])
        assert code == 0, err

    indexed()
    # The first run: nothing vouches for the index yet; its record vouches for the worker's.
    code, out, err = run_cli(["audit", "verify"])
    assert (code, err) == (0, ""), err
    assert "1 chain is not yet vouched for by a signed verification" in out, out
    indexed()
    code, out, err = run_cli(["audit", "verify", "--from-topic", "--db", url])
    assert (code, err) == (0, ""), err
    assert out.startswith(f"audit log intact (topic): {len(records) + 2} records in 2 chains")

    # Checked against Kafka a moment ago: no alarm, but when a signed verification last
    # vouched for the index, and what was written since (that run's own record and its
    # checkpoint, on the command line's chain), checked in the index only.
    code, out, err = run_cli(["audit", "verify"])
    assert (code, err) == (0, ""), err
    assert "not yet vouched for" not in out, out
    assert "nothing is missing" not in out, out
    said = re.search(
        rf"\. Every chain in the index verifies; signed verifications vouch for {len(records)} "
        r"of its records, the newest at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC "
        r"\((console:[^ ]+\.cli) seq 0\); 2 records in 1 chain \((console:[^ ]+\.cli)\) are "
        r"newer than what they vouch for, checked in the index only",
        out,
    )
    assert said is not None, out
    assert said.group(1) == said.group(2)  # the command line's own chain
    assert out.rstrip().endswith(
        "run 'accord audit verify --from-topic' (and --db) to check them against Kafka"
    ), out
