"""What ``bench_pipeline`` reads of a running worker: its /metrics and /readyz on loopback,
and its CPU time and peak memory from ``/proc``."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families


def received(metrics_port: int) -> int:
    """Events the worker has received and processed, from its own /metrics."""
    try:
        url = f"http://127.0.0.1:{metrics_port}/metrics"  # loopback: our own worker
        with urllib.request.urlopen(url, timeout=2) as r:  # http URL built above
            text = r.read().decode()
    except OSError:
        return 0
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("accord_events_received_total{")
        )
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# The worker's view of the latency phase, from its own histograms (docs/operations.md).
_SPLIT = {
    "worker_wait": "accord_pipeline_wait_seconds",
    "worker_latency": "accord_pipeline_latency_seconds",
    "worker_transaction": "accord_transaction_seconds",
}


def histograms(metrics_port: int) -> dict[str, dict[float, float]]:
    """Each of ``_SPLIT``'s histograms as cumulative counts by upper bound, now."""
    url = f"http://127.0.0.1:{metrics_port}/metrics"  # loopback: our own worker
    with urllib.request.urlopen(url, timeout=5) as r:  # http URL built above
        text = r.read().decode()
    out: dict[str, dict[float, float]] = {name: {} for name in _SPLIT.values()}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name.removesuffix("_bucket")
            if sample.name.endswith("_bucket") and name in out:
                out[name][float(sample.labels["le"])] = sample.value
    return out


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """``histogram_quantile`` as Prometheus computes it: linear within the bucket."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] == 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if bound == float("inf"):
                return lower  # beyond the last finite bound: that bound, as Prometheus says
            share = (rank - below) / (buckets[bound] - below) if buckets[bound] > below else 0
            return lower + (bound - lower) * share
        lower, below = bound, buckets[bound]
    return lower


def split(
    before: dict[str, dict[float, float]], after: dict[str, dict[float, float]]
) -> dict[str, float | None]:
    """p50 and p99, in ms, of what the worker observed between the two readings."""
    out: dict[str, float | None] = {}
    for key, name in _SPLIT.items():
        delta = {le: n - before[name].get(le, 0.0) for le, n in after[name].items()}
        for q in (0.5, 0.99):
            v = quantile(q, delta)
            out[f"{key}_p{round(q * 100)}_ms"] = None if v is None else round(v * 1000, 1)
    return out


def assigned(metrics_port: int) -> bool:
    """Whether the worker holds input partitions (its /readyz says ready)."""
    try:
        url = f"http://127.0.0.1:{metrics_port}/readyz"  # loopback: our own worker
        with urllib.request.urlopen(url, timeout=2) as r:  # http URL built above
            return bool(r.status == 200)
    except OSError:
        return False


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")
