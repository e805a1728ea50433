"""With Kafka down, an idle worker stops being ready within ``stale_after_seconds``, stays
live, logs a handful of JSON lines rather than thousands of plain ones, and is ready again,
without a restart, once Kafka is back.

A platform review found the opposite: ``/readyz`` and ``/livez`` 200 after minutes with no
broker, and 14,000 lines of aiokafka's plain text in three minutes. The worker runs as
``accord worker`` (a subprocess) on a broker of this module's own, which the test stops and
starts again.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from broker.devkafka import EmbeddedKafka
from tests.e2e.worker_proc import POLICIES, WorkerProcess, prepared

pytestmark = pytest.mark.slow

STALE_AFTER = 5.0
DOWN_FOR = 45.0  # long enough for aiokafka's thousand-line floods of before


def _probe(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, json.loads(r.read())["reason"]
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())["reason"]
    except (urllib.error.URLError, ConnectionError):
        return 0, ""  # not listening yet


def _committed(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith('accord_transactions_total{result="committed"}'):
                return float(line.split()[-1])
    return 0.0


async def _until_idle(worker: WorkerProcess) -> None:
    """Until the tasks' first transactions (the bundle on each chain) have committed and no
    more follow: the review's worker was idle, with no commit in flight."""
    last = -1.0
    for _ in range(60):
        now = await asyncio.to_thread(_committed, worker.metrics_port)
        if now > 0 and now == last:
            return
        last = now
        await asyncio.sleep(2.0)
    raise AssertionError(f"still committing after 2 minutes: {worker.tail()}")


async def _until(worker: WorkerProcess, want: tuple[int, str], within: float) -> None:
    deadline = time.monotonic() + within
    got: tuple[int, str] = (0, "")
    while time.monotonic() < deadline:
        got = await asyncio.to_thread(_probe, worker.metrics_port, "/readyz")
        if got == want:
            return
        assert worker.alive(), worker.tail()
        await asyncio.sleep(0.5)
    raise AssertionError(f"/readyz {got}, not {want}, after {within:.0f} s: {worker.tail()}")


async def test_kafka_down_the_worker_is_not_ready_stays_live_logs_little_and_recovers(
    isolated_kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    bootstrap = isolated_kafka.bootstrap
    _, keys = await prepared(bootstrap, tmp_path)
    worker = WorkerProcess(tmp_path, keys, bootstrap, POLICIES)
    worker.env["ACCORD_WORKER__STALE_AFTER_SECONDS"] = str(STALE_AFTER)
    worker.start()
    try:
        await _until(worker, (200, "ok"), within=120)
        await _until_idle(worker)
        before = len(worker.log.read_text().splitlines())

        await asyncio.to_thread(isolated_kafka.stop)
        stopped = time.monotonic()
        await _until(worker, (503, "kafka unreachable"), within=STALE_AFTER + 15)
        assert time.monotonic() - stopped >= STALE_AFTER - 1  # not at the first empty fetch
        await asyncio.sleep(max(0.0, DOWN_FOR - (time.monotonic() - stopped)))
        assert await asyncio.to_thread(_probe, worker.metrics_port, "/livez") == (200, "ok")
        assert await asyncio.to_thread(_probe, worker.metrics_port, "/readyz") == (
            503,
            "kafka unreachable",
        )
        logged = worker.log.read_text().splitlines()[before:]

        await asyncio.to_thread(isolated_kafka.start)
        await _until(worker, (200, "ok"), within=120)
        assert worker.alive()  # recovered by itself, no restart
    finally:
        worker.stop()

    lines = [json.loads(line) for line in logged]  # every line JSON, the libraries' too
    assert len(lines) <= 40, "\n".join(logged)
    assert any(line.get("logger", "").startswith("aiokafka") for line in lines), logged
