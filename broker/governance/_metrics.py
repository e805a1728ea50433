"""Prometheus metrics of the audit indexer, registered on an injected ``CollectorRegistry``.

Labels are refusal reasons (a fixed set, ``_index``) and, for Operation Encompass, the school's
party id: never a chain, a seq, an event or a person.
The gauges of what waits (records no checkpoint covers yet, overrides past their review
deadline) are numbers only: which chain or which override is for ``accord audit`` to say.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge

from broker.audit import AuditRecord
from broker.governance._encompass import EncompassNotice
from broker.governance._store import ChainHead


class IndexMetrics:
    def __init__(
        self, registry: CollectorRegistry, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.registry = registry
        self._clock = clock
        self._reported_indexed = 0
        self._reported_refused: Tally[str] = Tally()
        self._first_seen: dict[str, float] = {}  # waiting records' hashes: when first held
        self.indexed = Counter(
            "accord_audit_indexed_records",
            "Audit records verified and written to the index.",
            registry=registry,
        )
        self.refused = Counter(
            "accord_audit_refused",
            "Messages on the audit topic kept out of the index, by reason.",
            ["reason"],
            registry=registry,
        )
        self.broken = Gauge(
            "accord_audit_chains_broken",
            "Audit chains whose indexing stopped on signed evidence of a break.",
            registry=registry,
        )
        self.last_indexed = Gauge(
            "accord_audit_last_indexed_timestamp_seconds",
            "When the indexer last committed a batch (Unix time).",
            registry=registry,
        )
        self.lag = Gauge(
            "accord_audit_index_lag",
            "Messages behind the end of the audit topic, summed over its partitions.",
            registry=registry,
        )
        self.unsigned_oldest = Gauge(
            "accord_audit_unsigned_oldest_seconds",
            "Age of the oldest record held because no signed checkpoint covers it yet (0: none).",
            registry=registry,
        )
        self.overrides_overdue = Gauge(
            "accord_audit_overrides_overdue",
            "Safeguarding overrides whose review deadline has passed without a review.",
            registry=registry,
        )
        self.encompass_overdue = Gauge(
            "accord_audit_encompass_overdue",
            "Operation Encompass notices past their deadline (the start of the next school "
            "day) that the school has not acknowledged, by school.",
            ["school"],
            registry=registry,
        )
        self.encompass_late = Counter(
            "accord_audit_encompass_late",
            "Operation Encompass notices this indexer saw pass their deadline unacknowledged, "
            "by school (each notice once).",
            ["school"],
            registry=registry,
        )
        self._overdue_schools: set[str] = set()
        self._late_seen: set[tuple[str, str]] = set()

    def encompass(self, overdue: Iterable[EncompassNotice]) -> None:
        """The notices overdue now: gauged by school, and each newly overdue one counted.

        A notice leaves the overdue set only when acknowledged, and never comes back, so the
        set remembered is exactly what has been counted and is still overdue.
        """
        now: dict[str, int] = {}
        seen: set[tuple[str, str]] = set()
        for n in overdue:
            now[n.school] = now.get(n.school, 0) + 1
            key = (n.event_id, n.school)
            seen.add(key)
            if key not in self._late_seen:
                self.encompass_late.labels(school=n.school).inc()
        self._late_seen = seen
        for school in self._overdue_schools - set(now):
            self.encompass_overdue.labels(school=school).set(0)
        for school, count in now.items():
            self.encompass_overdue.labels(school=school).set(count)
        self._overdue_schools |= set(now)

    def holding(self, waiting: Iterable[AuditRecord]) -> None:
        """The records read but not yet covered by their writer's checkpoint, now.

        A record's age counts from the earlier of its own time (the writer's clock, so it
        survives an indexer restart) and when this indexer first held it (so a record
        claiming a time in the future cannot hide).
        """
        now = self._clock()
        seen: dict[str, float] = {}
        oldest = now
        for rec in waiting:
            first = seen[rec.hash] = self._first_seen.get(rec.hash, now)
            oldest = min(oldest, first, rec.at.timestamp())
        self._first_seen = seen
        self.unsigned_oldest.set(max(0.0, now - oldest))

    def committed(self, indexed: int, refused: Tally[str], heads: dict[str, ChainHead]) -> None:
        """After a batch is in the index: ``indexed`` and ``refused`` are running totals."""
        self.indexed.inc(max(0, indexed - self._reported_indexed))
        self._reported_indexed = indexed
        for reason, total in refused.items():
            new = total - self._reported_refused[reason]
            if new > 0:
                self.refused.labels(reason=reason).inc(new)
            self._reported_refused[reason] = total
        self.broken.set(sum(h.broken_seq is not None for h in heads.values()))
        self.last_indexed.set(self._clock())
