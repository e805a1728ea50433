"""What waits, as the indexer's gauges: records no signed checkpoint covers yet, and
safeguarding overrides past their review deadline. Numbers only, never which."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from broker.audit import AuditKind, AuditRecord, ChainWriter, KeystoreAuditSigner
from broker.audit import KeystoreAuditVerifier as Verifier
from broker.governance import AuditStore, Indexer
from broker.governance._metrics import IndexMetrics
from broker.governance._reports import OVERRIDE_REVIEW_DEADLINE, overdue_overrides
from broker.governance._review import ReviewFinding, check_reviewable, review_record
from broker.keys import FileKeyStore
from broker.linkage import Linker
from broker.principals import Principal
from tests.unit.audit.conftest import T0, worker_chain
from tests.unit.audit.conftest import fetched as _fetched

UNSIGNED = "accord_audit_unsigned_oldest_seconds"
OVERDUE = "accord_audit_overrides_overdue"


class Clock:
    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


def _indexer(store: AuditStore, verifier: Verifier, clock: Clock) -> tuple[Indexer, Any]:
    registry = CollectorRegistry()
    indexer = Indexer(store, verifier, kafka=None, registry=registry, clock=clock)  # type: ignore[arg-type]  # no Kafka here
    return indexer, registry


# -- records waiting for a signed checkpoint ------------------------------------------------


def test_a_record_no_checkpoint_covers_yet_ages_from_its_own_time(
    store: AuditStore, verifier: Verifier, linker: Linker, keys: FileKeyStore
) -> None:
    records = worker_chain(linker, keys)
    assert records[-1].kind is AuditKind.CHECKPOINT
    clock = Clock((T0 + timedelta(hours=1)).timestamp())
    indexer, registry = _indexer(store, verifier, clock)
    # The last delivery waits for its checkpoint: the partition has not been read to its end.
    assert indexer._commit(_fetched(records[:-1]), ended={})
    waiting = records[-2]
    assert indexer.tracker.waiting == 1
    assert registry.get_sample_value(UNSIGNED) == clock.at - waiting.at.timestamp()
    clock.at += 30
    indexer._measure_backlog()  # what the loop does each time round, batch or not
    assert registry.get_sample_value(UNSIGNED) == clock.at - waiting.at.timestamp()
    assert indexer._commit(_fetched(records[-1:], start=len(records) - 1))
    assert indexer.tracker.waiting == 0
    assert registry.get_sample_value(UNSIGNED) == 0


def test_nothing_waiting_is_zero(
    store: AuditStore, verifier: Verifier, linker: Linker, keys: FileKeyStore
) -> None:
    indexer, registry = _indexer(store, verifier, Clock((T0 + timedelta(hours=1)).timestamp()))
    assert registry.get_sample_value(UNSIGNED) == 0  # present before the first batch
    assert indexer._commit(_fetched(worker_chain(linker, keys)))
    assert registry.get_sample_value(UNSIGNED) == 0


def test_a_record_dated_in_the_future_ages_from_when_it_was_first_held(
    linker: Linker, keys: FileKeyStore
) -> None:
    records = worker_chain(linker, keys)
    clock = Clock((T0 - timedelta(days=1)).timestamp())  # every record "from the future"
    metrics = IndexMetrics(CollectorRegistry(), clock=clock)
    metrics.holding([records[1]])
    assert metrics.registry.get_sample_value(UNSIGNED) == 0
    clock.at += 90
    metrics.holding([records[1], records[2]])  # the second one is new: held from now
    assert metrics.registry.get_sample_value(UNSIGNED) == 90
    metrics.holding([records[2]])
    assert metrics.registry.get_sample_value(UNSIGNED) == 0
    metrics.holding([])
    clock.at += 10
    metrics.holding([records[1]])  # gone and back (a reload): held anew
    assert metrics.registry.get_sample_value(UNSIGNED) == 0


# -- overrides past their review deadline -----------------------------------------------------


def test_an_override_is_overdue_once_its_deadline_has_passed(
    store: AuditStore, indexed: list[AuditRecord]
) -> None:
    [override] = [r for r in indexed if r.data.get("outcome") == "shared_override"
                  and r.kind is AuditKind.DECIDED]  # fmt: skip
    due = override.at + OVERRIDE_REVIEW_DEADLINE
    assert overdue_overrides(store, due - timedelta(seconds=1)) == []
    assert [p.event_id for p in overdue_overrides(store, due)] == ["e2"]
    assert overdue_overrides(store, due, deadline=timedelta(days=30)) == []


def _review(store: AuditStore, keys: FileKeyStore) -> list[AuditRecord]:
    decision = check_reviewable(store, "e2", "school-1")
    writer = ChainWriter("console:test", clock=lambda: T0 + timedelta(days=5))
    finding = ReviewFinding.JUSTIFIED
    records = [
        review_record(writer, decision, reviewed_by="ig-jo", finding=finding, reference=None)
    ]
    records.append(writer.checkpoint(KeystoreAuditSigner(keys, Principal.CONSOLE)))
    return records


@pytest.mark.parametrize(("days", "overdue"), [(1, 0), (4, 1)])
def test_the_indexer_counts_overdue_overrides_after_a_batch(
    store: AuditStore, verifier: Verifier, linker: Linker, keys: FileKeyStore,
    days: int, overdue: int,
) -> None:  # fmt: skip
    indexer, registry = _indexer(store, verifier, Clock((T0 + timedelta(days=days)).timestamp()))
    assert indexer._commit(_fetched(worker_chain(linker, keys)))
    assert registry.get_sample_value(OVERDUE) == overdue


def test_a_review_takes_an_override_off_the_count_at_once(
    store: AuditStore, verifier: Verifier, linker: Linker, keys: FileKeyStore
) -> None:
    indexer, registry = _indexer(store, verifier, Clock((T0 + timedelta(days=4)).timestamp()))
    records = worker_chain(linker, keys)
    assert indexer._commit(_fetched(records))
    assert registry.get_sample_value(OVERDUE) == 1
    assert indexer._commit(_fetched(_review(store, keys), start=len(records)))
    assert registry.get_sample_value(OVERDUE) == 0
    text = generate_latest(registry).decode()
    assert "e2" not in text
    assert "school-1" not in text


def test_the_count_is_a_small_query_at_most_once_a_minute_when_nothing_changed(
    store: AuditStore, verifier: Verifier, linker: Linker, keys: FileKeyStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    clock = Clock((T0 + timedelta(days=1)).timestamp())
    indexer, registry = _indexer(store, verifier, clock)
    assert indexer._commit(_fetched(worker_chain(linker, keys)))
    assert registry.get_sample_value(OVERDUE) == 0
    asked = []
    real = store.pending_overrides
    monkeypatch.setattr(store, "pending_overrides", lambda: asked.append(1) or real())
    clock.at += timedelta(days=3).total_seconds()  # the override is now overdue...
    indexer._measure_backlog()
    assert asked == []  # ...but counted again only a minute after the last count
    assert registry.get_sample_value(OVERDUE) == 0
    indexer._overdue_counted = (indexer._overdue_counted or 0) - 61
    indexer._measure_backlog()
    assert asked == [1]
    assert registry.get_sample_value(OVERDUE) == 1
