"""A real worker and a real ``accord audit index --follow`` answer probes and export metrics.

Both run as subprocesses on an embedded broker, each with its ops server on a port of its
own; the worker's is set by option, the indexer's by environment. Once the worker has
consumed and the indexer caught up, ``/livez`` and ``/readyz`` answer 200 and ``/metrics``
holds their ``accord_`` metrics.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from broker.devkafka import EmbeddedKafka, free_port
from broker.sdk import Publisher
from tests.e2e.worker_proc import POLICIES, WorkerProcess, incidents, prepared, received_ids
from tests.kafka_helpers import clients, kafka_env

pytestmark = pytest.mark.slow


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}{path}", timeout=5
        ) as r:  # a fixed http URL
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return 0, ""  # not listening yet


async def _until_ready(port: int, alive: Callable[[], bool], tail: Callable[[], str]) -> None:
    for _ in range(240):
        status, _ = await asyncio.to_thread(_get, port, "/readyz")
        if status == 200:
            return
        assert alive(), tail()
        await asyncio.sleep(0.5)
    raise AssertionError(f"not ready within 2 minutes: {tail()}")


async def test_the_worker_and_the_indexer_answer_probes_and_export_metrics(
    isolated_kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    bootstrap = isolated_kafka.bootstrap
    _, keys = await prepared(bootstrap, tmp_path)
    worker = WorkerProcess(tmp_path, keys, bootstrap, POLICIES)
    worker.start("--metrics-host", "127.0.0.1")
    index_port = free_port()
    index_log = tmp_path / "index.log"
    env = {**os.environ, "ACCORD_HOME": str(tmp_path), **kafka_env(bootstrap),
           "ACCORD_KEYSTORE__PATH": str(keys.path),
           "ACCORD_INDEXER__METRICS_PORT": str(index_port)}  # fmt: skip
    indexer: subprocess.Popen[bytes] | None = None
    try:
        await _until_ready(worker.metrics_port, worker.alive, worker.tail)
        events = incidents(20)
        async with Publisher("wmp", keys, clients(bootstrap, "wmp")) as pub:
            await pub.publish_many(events)
        for _ in range(120):
            if len(await received_ids(bootstrap)) == len(events):
                break
            await asyncio.sleep(0.5)
        status, body = await asyncio.to_thread(_get, worker.metrics_port, "/livez")
        assert (status, json.loads(body)) == (200, {"status": "ok", "reason": "ok"})
        status, body = await asyncio.to_thread(_get, worker.metrics_port, "/metrics")
        assert status == 200
        assert "accord_events_received_total" in body
        assert 'accord_transactions_total{result="committed"}' in body

        with index_log.open("ab") as fh:
            indexer = subprocess.Popen(
                [sys.executable, "-m", "broker", "audit", "index", "--follow",
                 "--db", f"sqlite:///{tmp_path / 'audit.db'}"],
                env=env, stdout=subprocess.DEVNULL, stderr=fh,
            )  # fmt: skip
        proc = indexer
        await _until_ready(
            index_port, lambda: proc.poll() is None, lambda: index_log.read_text()[-3000:]
        )
        status, body = await asyncio.to_thread(_get, index_port, "/metrics")
        assert status == 200
        indexed = [ln for ln in body.splitlines() if ln.startswith("accord_audit_indexed_records")]
        assert indexed, body
        assert float(indexed[0].split()[-1]) > 0
        assert "accord_audit_chains_broken 0.0" in body
        assert (await asyncio.to_thread(_get, index_port, "/livez"))[0] == 200
    finally:
        if indexer is not None and indexer.poll() is None:
            indexer.terminate()
            indexer.wait(timeout=60)
        worker.stop()
    assert indexer.returncode == 0, index_log.read_text()[-3000:]
