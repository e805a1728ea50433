"""The indexer's metrics and probes: counts of what it indexed and refused, never who."""

from __future__ import annotations

from collections import Counter

from prometheus_client import CollectorRegistry, generate_latest

from broker.audit import KeystoreAuditVerifier
from broker.governance import AuditStore, Indexer
from broker.governance._metrics import IndexMetrics
from broker.governance._store import ChainHead
from broker.keys import FileKeyStore
from broker.linkage import Linker
from tests.unit.audit.conftest import fetched as _fetched
from tests.unit.audit.conftest import worker_chain


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_the_indexer_counts_what_it_indexed_and_refused_once_each(
    store: AuditStore, verifier: KeystoreAuditVerifier, linker: Linker, keys: FileKeyStore
) -> None:
    registry = CollectorRegistry()
    indexer = Indexer(store, verifier, kafka=None, registry=registry)  # type: ignore[arg-type]  # no Kafka here
    records = worker_chain(linker, keys)
    assert indexer._commit(_fetched(records, junk=2))
    assert _value(registry, "accord_audit_indexed_records_total") == len(records)
    assert _value(registry, "accord_audit_refused_total", reason="undecodable") == 2
    assert _value(registry, "accord_audit_chains_broken") == 0
    assert (_value(registry, "accord_audit_last_indexed_timestamp_seconds") or 0) > 0
    # Read again (a restart before the offsets moved): duplicates are not indexed again.
    assert indexer._commit(_fetched(records, start=100))
    assert _value(registry, "accord_audit_indexed_records_total") == len(records)
    assert _value(registry, "accord_audit_refused_total", reason="undecodable") == 2


def test_the_metrics_name_no_chain_and_no_record(
    store: AuditStore, verifier: KeystoreAuditVerifier, linker: Linker, keys: FileKeyStore
) -> None:
    registry = CollectorRegistry()
    indexer = Indexer(store, verifier, kafka=None, registry=registry)  # type: ignore[arg-type]  # no Kafka here
    records = worker_chain(linker, keys)
    indexer._commit(_fetched(records, junk=1))
    text = generate_latest(registry).decode()
    assert "worker:w1" not in text
    for rec in records:
        assert rec.hash not in text
        assert not rec.subject_keys or all(k not in text for k in rec.subject_keys)


def test_broken_chains_are_a_gauge_of_the_heads_that_broke() -> None:
    metrics = IndexMetrics(CollectorRegistry(), clock=lambda: 1234.0)
    heads = {
        "worker:a": ChainHead("worker:a", 5, "h"),
        "worker:b": ChainHead("worker:b", 9, "h", broken_seq=7, error="gap"),
    }
    metrics.committed(10, Counter({"foreign-chain": 1}), heads)
    assert metrics.registry.get_sample_value("accord_audit_chains_broken") == 1
    assert (
        metrics.registry.get_sample_value("accord_audit_last_indexed_timestamp_seconds") == 1234.0
    )


def test_the_indexer_is_ready_once_it_has_caught_up(
    store: AuditStore, verifier: KeystoreAuditVerifier
) -> None:
    indexer = Indexer(store, verifier, kafka=None)  # type: ignore[arg-type]  # no Kafka here
    assert indexer.live().ok
    assert indexer.ready().reason == "starting"
    indexer.heartbeat.beat()
    assert indexer.ready().reason == "catching up"
    indexer.caught_up = True
    assert indexer.ready().ok
