"""Each sender's budget: one noisy or hostile agency cannot crowd out the others.

Every agency publishes on its own ingress topic, so a sender over its budget is slowed by
pausing its topic, not by dropping anything: its records wait on Kafka, in order, and are
processed when the budget allows. Nothing is lost and nothing extra is audited; the other
senders' topics keep flowing, and the audit log grows no faster than the budget lets one
sender make it grow.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float


class SenderBudget:
    """A token bucket per sender: ``rate`` records a second sustained, ``burst`` at once.

    ``rate`` 0 means no limit (a benchmark measuring the worker's own ceiling).
    """

    def __init__(self, rate: float, burst: int) -> None:
        if rate < 0 or burst < 1:
            raise ValueError("a sender budget needs rate >= 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, _Bucket] = {}

    def spend(self, sender: str, records: int, now: float) -> float:
        """Charge ``records`` to ``sender``; the seconds it must now wait (0: none)."""
        if self.rate == 0:
            return 0.0
        bucket = self._buckets.get(sender)
        if bucket is None:
            bucket = self._buckets[sender] = _Bucket(float(self.burst), now)
        elapsed = max(0.0, now - bucket.at)
        bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate) - records
        bucket.at = now
        return 0.0 if bucket.tokens >= 0 else -bucket.tokens / self.rate
