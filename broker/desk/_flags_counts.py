"""What the flag service has done, counted for its ``/metrics`` (no child, no record, no
value from one: only what happened and where).

- ``accord_desk_flags_deliveries_total{outcome}``: delivery-topic records read, ``processed``
  (sent on to the windows: records and withdrawal notices) or ``skipped`` (could not be
  opened or read: the log's ``flags_record_skipped`` says why);
- ``accord_desk_flags_failed_total{step}``: messages between its own steps that the
  ``child`` or ``household`` step could not work on (the log's ``flags_record_failed``);
- ``accord_desk_flags_rule_failed_total{rule}``: times a rule's ``when`` failed on a child's
  window, so did not fire there (the log's ``flags_rule_failed`` gives the error's type); one
  series per rule, from 0;
- ``accord_desk_flags_raised_total``: flags published;
- ``accord_desk_flags_progress_timestamp_seconds``: when it last committed its reading of the
  delivery topic: after each batch, and at least once a minute while it has read everything.
  Older than a few minutes means it is stopped, stuck or cut off from Kafka, and new records
  are not being checked against the rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["FlagCounts"]


class FlagCounts(Collector):
    """The flag service's counts; a ``prometheus_client`` collector of them."""

    def __init__(self) -> None:
        self.processed = 0
        self.skipped = 0
        self.failed = {"child": 0, "household": 0}
        self.raised = 0
        self.progress: float | None = None
        #: rule id → runtime failures of its ``when`` (``rule_failed``).
        self.rules_failed: dict[str, int] = {}

    def rules(self, ids: Iterable[str]) -> None:
        """Count the rules ``ids`` from 0: each has its series before it first fails."""
        for rule in ids:
            self.rules_failed.setdefault(rule, 0)

    def rule_failed(self, rule: str) -> None:
        self.rules_failed[rule] = self.rules_failed.get(rule, 0) + 1

    def collect(self) -> Iterator[Any]:
        read = CounterMetricFamily(
            "accord_desk_flags_deliveries",
            "Delivery-topic records the flag service read, by outcome",
            labels=["outcome"],
        )
        read.add_metric(["processed"], self.processed)
        read.add_metric(["skipped"], self.skipped)
        yield read
        failed = CounterMetricFamily(
            "accord_desk_flags_failed",
            "Messages between the flag service's steps that a step could not work on",
            labels=["step"],
        )
        for step, n in sorted(self.failed.items()):
            failed.add_metric([step], n)
        yield failed
        rules = CounterMetricFamily(
            "accord_desk_flags_rule_failed",
            "Times a flag rule's condition failed on a child's window (it did not fire there)",
            labels=["rule"],
        )
        for rule, n in sorted(self.rules_failed.items()):
            rules.add_metric([rule], n)
        yield rules
        yield CounterMetricFamily(
            "accord_desk_flags_raised", "Flags the flag service published", value=self.raised
        )
        if self.progress is not None:
            yield GaugeMetricFamily(
                "accord_desk_flags_progress_timestamp_seconds",
                "When the flag service last committed its reading of the delivery topic",
                value=self.progress,
            )
