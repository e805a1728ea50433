"""The worker's counters, through the cached-child helper the hot path uses."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry

import broker.pipeline
from broker.pipeline._metrics import Metrics, quarantine_reasons
from broker.pipeline._processor import unreadable


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


def test_every_quarantine_reason_and_transaction_result_is_a_series_from_zero_at_start() -> None:
    """increase() sees nothing of a series that first appears at 1: without these, the first
    tampered or key-rejected record after a worker starts paged no one (on-call walkthrough)."""
    registry = CollectorRegistry()
    Metrics(registry)
    for reason in ("tampered", "bad-signature", "key-rejected", "malformed", "stage-failed"):
        assert registry.get_sample_value("accord_quarantined_total", {"reason": reason}) == 0
    for result in ("committed", "aborted", "unconfirmed"):
        assert registry.get_sample_value("accord_transactions_total", {"result": result}) == 0


def test_the_quarantine_reasons_are_the_stages_literals_and_the_docs_table() -> None:
    """One list, checked both ways: a reason a stage returns that is not in it would start at
    1 (no alert), and the docs table is what an operator reads the label's values from."""
    reasons = set(quarantine_reasons())
    pipeline = Path(broker.pipeline.__file__).parent
    # The stages' quarantine("x") and Outcome(Verdict.QUARANTINE, "x"), and the reasons
    # the processor names before any stage (unreadable()).
    written = r'quarantine\("([a-z-]+)"\)|Verdict\.QUARANTINE, "([a-z-]+)"'
    used = {a or b for f in pipeline.glob("*.py") for a, b in re.findall(written, f.read_text())}
    used |= {unreadable(b"", []), unreadable(b"x", [("\udcff", b"")])}
    assert used <= reasons, used - reasons
    docs = Path(__file__).parents[3] / "docs" / "operations.md"
    section = docs.read_text().split("## Quarantine reason codes", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]  # the table's
    listed = {code for row in rows for code in re.findall(r"`([a-z-]+)`", row.split("|")[1])}
    assert listed == reasons
