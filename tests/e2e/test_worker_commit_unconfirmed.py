"""A commit Kafka never confirms ends the worker, with one line that says so, within a bounded
time; a SIGTERM while such commits wait ends it sooner still.

Kafka is frozen (SIGSTOP on its JVM: it keeps its connections and answers nothing, as a
broker behind a firewall that drops packets would) once the worker is ready and idle, and a
policy reload (SIGHUP) then starts a transaction on every task, which can only wait. aiokafka
retries a transaction's requests without limit, and the worker used to wait for them for
ever: it neither exited nor, once stalled, honoured SIGTERM (a platform test needed SIGKILL).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker.devkafka import EmbeddedKafka
from broker.keys import FileKeyStore
from broker.pipeline._tasks import CLOSE_WITHIN_S, COMMIT_WITHIN_S, STOP_WITHIN_S
from broker.policy import load_bundle
from tests.e2e.test_worker_kafka_down import _until, _until_idle
from tests.e2e.worker_proc import POLICIES, WorkerProcess, keystore_for
from tests.kafka_helpers import provisioned

pytestmark = pytest.mark.slow

COORD = "sandwell-coord"


class Freezer:
    """SIGSTOP and SIGCONT for the module's own broker, by its own pid."""

    def __init__(self, kafka: EmbeddedKafka) -> None:
        pid = kafka.status().pid
        assert pid is not None
        self.pid = pid
        self.stopped = False

    def freeze(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)
        self.stopped = True

    def thaw(self) -> None:
        if self.stopped:
            os.kill(self.pid, signal.SIGCONT)
            self.stopped = False


@pytest.fixture
def frozen(isolated_kafka: EmbeddedKafka) -> Iterator[Freezer]:
    freezer = Freezer(isolated_kafka)
    yield freezer
    freezer.thaw()  # the next test of the module gets a broker that answers


@dataclass
class _Home:
    bundle: Path
    keys: FileKeyStore


@pytest.fixture(scope="module")
def home(isolated_kafka: EmbeddedKafka, tmp_path_factory: pytest.TempPathFactory) -> _Home:
    """One bundle and keystore for the module's workers: the changelog on the module's broker
    is sealed under the first one's keys, and a worker with others refuses it."""
    root = tmp_path_factory.mktemp("unconfirmed")
    bundle = root / "policies"
    shutil.copytree(POLICIES, bundle, ignore=shutil.ignore_patterns("scenarios"))
    policy = load_bundle(bundle)
    keys = keystore_for(policy, root / "keys")
    provisioned(isolated_kafka.bootstrap, policy)
    return _Home(bundle, keys)


def _change(bundle: Path) -> None:
    """A new bundle version: the co-ordinating team suspended, or back again."""
    parties = bundle / "parties.yaml"
    text, marker = parties.read_text(), f"  {COORD}:\n"
    suspended = f"{marker}    status: suspended\n"
    changed = (
        text.replace(suspended, marker) if suspended in text else text.replace(marker, suspended)
    )
    assert changed != text
    parties.write_text(changed)


async def _committing_while_frozen(
    kafka: EmbeddedKafka, freezer: Freezer, home: _Home, tmp_path: Path
) -> WorkerProcess:
    """A worker, ready and idle, then Kafka frozen and a reload that every task must commit."""
    worker = WorkerProcess(tmp_path, home.keys, kafka.bootstrap, home.bundle)
    worker.start()
    await _until(worker, (200, "ok"), within=120)
    await _until_idle(worker)
    _change(home.bundle)
    freezer.freeze()
    worker.signal(signal.SIGHUP)
    return worker


async def _exit_within(worker: WorkerProcess, seconds: float) -> int | None:
    assert worker.proc is not None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (code := worker.proc.poll()) is not None:
            return code
        await asyncio.sleep(0.5)
    return None


async def test_a_commit_kafka_never_confirms_ends_the_worker_with_one_line(
    isolated_kafka: EmbeddedKafka, frozen: Freezer, home: _Home, tmp_path: Path
) -> None:
    worker = await _committing_while_frozen(isolated_kafka, frozen, home, tmp_path)
    try:
        code = await _exit_within(worker, COMMIT_WITHIN_S + STOP_WITHIN_S + 6 * CLOSE_WITHIN_S + 5)
        assert code is not None, f"still running: {worker.tail()}"
        assert code != 0
        log = worker.log.read_text()
        assert "did not confirm" in log, worker.tail()
        assert "Traceback" not in log, worker.tail()
    finally:
        if worker.alive():
            worker.kill()


async def test_sigterm_while_commits_wait_for_a_frozen_kafka_ends_the_worker_in_bounded_time(
    isolated_kafka: EmbeddedKafka, frozen: Freezer, home: _Home, tmp_path: Path
) -> None:
    worker = await _committing_while_frozen(isolated_kafka, frozen, home, tmp_path)
    try:
        await asyncio.sleep(2.0)  # the reload's commits under way
        worker.signal(signal.SIGTERM)
        # The last commits' bound, their aborts, the producers', the consumers' (each
        # CLOSE_WITHIN_S), and the process's own start and end.
        code = await _exit_within(worker, STOP_WITHIN_S + 5 * CLOSE_WITHIN_S + 5)
        assert code is not None, f"SIGTERM not honoured: {worker.tail()}"
        assert "Traceback" not in worker.log.read_text(), worker.tail()
    finally:
        if worker.alive():
            worker.kill()
