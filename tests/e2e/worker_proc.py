"""Running ``accord worker`` as a real subprocess in e2e tests, and reading topics back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from broker.audit import AuditRecord
from broker.devkafka import free_port
from broker.keys import FileKeyStore
from broker.policy import Policy
from broker.topics import AUDIT


async def read_all(bootstrap: str, topic: str) -> list[Any]:
    """Every committed record of ``topic`` (reads until two quiet polls)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    out: list[Any] = []
    try:
        idle = 0
        while idle < 2:
            batch = await consumer.getmany(timeout_ms=400)
            msgs = [m for ms in batch.values() for m in ms]
            out += msgs
            idle = 0 if msgs else idle + 1
    finally:
        await consumer.stop()
    return out


async def read_audit(bootstrap: str) -> list[AuditRecord]:
    return [AuditRecord.model_validate_json(m.value) for m in await read_all(bootstrap, AUDIT)]


def keystore_for(policy: Policy, path: Path) -> FileKeyStore:
    keys = FileKeyStore(path, create=True)
    for party in [*policy.bundle.parties, "worker", "audit", "governance"]:
        keys.ensure_party(party)
    return keys


class WorkerProcess:
    """``python -m broker worker`` with its JSON logs captured to a file."""

    def __init__(self, home: Path, keys: FileKeyStore, bootstrap: str, policies: Path) -> None:
        self.env = {
            **os.environ,
            "ACCORD_HOME": str(home),
            "ACCORD_KAFKA_BOOTSTRAP": bootstrap,
            "ACCORD_KEYSTORE__PATH": str(keys.path),
        }
        self.policies = policies
        self.log = home / "worker.log"
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> None:
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "broker", "worker", "--policies", str(self.policies),
                 "--metrics-port", str(self.metrics_port), *extra],
                env=self.env, stdout=subprocess.DEVNULL, stderr=fh,
            )  # fmt: skip

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: no goodbye, no flush, an open transaction left behind."""
        self.signal(signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait(timeout=30)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.signal(signal.SIGTERM)
            assert self.proc is not None
            self.proc.wait(timeout=60)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]
