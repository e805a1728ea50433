"""A SIGHUP that finds the bundle unchanged says so (``policy_unchanged``, its version): an
operator who edited the bundle and sent the signal learns that nothing changed."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from broker.config import KafkaSettings, Settings
from broker.kafka import KafkaClients
from broker.pipeline import Worker, WorkerOptions
from broker.pipeline._loop import TransactionalLoop
from broker.policy import load_bundle

REPO = Path(__file__).resolve().parents[3]


class _Loop:
    pending_policy = None


def test_a_reload_with_the_same_bundle_logs_policy_unchanged_and_changes_nothing(
    tmp_path: Path,
) -> None:
    worker = Worker(
        Settings(home=tmp_path, policies=REPO / "policies"),
        WorkerOptions(policies=REPO / "policies"),
        kafka=KafkaClients(KafkaSettings(username="worker", password="pw")),
        registry=CollectorRegistry(),
    )
    worker.policy = policy = load_bundle(REPO / "policies")
    loop = _Loop()
    worker.loop = cast("TransactionalLoop", loop)
    with capture_logs() as logs:
        worker.request_reload()
    assert [(e["event"], e["log_level"], e["version"]) for e in logs] == [
        ("policy_unchanged", "info", policy.version)
    ]
    assert loop.pending_policy is None
    assert worker.policy is policy
