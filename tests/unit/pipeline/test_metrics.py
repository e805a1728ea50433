"""The worker's counters, through the cached-child helper the hot path uses."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from broker.pipeline._metrics import Metrics


def test_count_increments_the_labelled_series_it_names_and_no_other() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    for _ in range(3):
        metrics.count(metrics.decisions, "sandwell-coord", "shared")
    metrics.count(metrics.decisions, "sandwell-coord", "not_shared")
    metrics.count(metrics.audit_records, "decided")

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("accord_decisions_total", recipient="sandwell-coord", outcome="shared") == 3
    assert value("accord_decisions_total", recipient="sandwell-coord", outcome="not_shared") == 1
    assert value("accord_audit_records_total", kind="decided") == 1
    assert value("accord_audit_records_total", kind="received") is None
