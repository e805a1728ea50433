"""A reload of a bundle naming a sender whose ingress topic is not made yet stands, and says
so: one warning naming the missing topics and their parties, and what to do. The worker
refuses such a bundle at start (``check_topics``), so a restart in that gap would stop it;
before this, the reload logged only ``policy_reloaded``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from broker.config import KafkaSettings, Settings
from broker.errors import ConfigError, TransportError
from broker.kafka import KafkaClients
from broker.pipeline import Worker, WorkerOptions, _worker
from broker.pipeline._loop import TransactionalLoop
from broker.policy import Policy, load_bundle
from broker.topics import ingress, party_of_ingress

REPO = Path(__file__).resolve().parents[3]


class _Loop:
    pending_policy = None


class _Cluster:
    """What the worker's login sees on the cluster: every topic asked about, but the first
    sender's ingress topic if ``new_sender`` (provision not run yet for it)."""

    def __init__(self, *, new_sender: bool = False, fails: bool = False) -> None:
        self.new_sender, self.fails = new_sender, fails
        self.asked: list[str] = []

    async def missing_topics(self, _: KafkaClients, names: Iterable[str], **__: Any) -> list[str]:
        if self.fails:
            raise TransportError("connecting to Kafka at kafka:9093: Kafka did not answer in time")
        self.asked = list(names)
        return self.senders()[:1] if self.new_sender else []

    def senders(self) -> list[str]:
        return sorted(t for t in self.asked if party_of_ingress(t) is not None)


def _worker_with(cluster: _Cluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Worker:
    monkeypatch.setattr(_worker, "missing_topics", cluster.missing_topics)
    worker = Worker(
        Settings(home=tmp_path, policies=REPO / "policies"),
        WorkerOptions(policies=REPO / "policies"),
        kafka=KafkaClients(KafkaSettings(username="worker", password="pw")),
        registry=CollectorRegistry(),
    )
    # The bundle in force before: another one (its version is all a reload compares).
    worker.policy = cast("Policy", SimpleNamespace(version="0" * 64))
    worker.loop = cast("TransactionalLoop", _Loop())
    return worker


async def _reload(worker: Worker) -> list[dict[str, Any]]:
    """The reload's own lines: the suite's event loop may carry other tests' background
    tasks (a TLS expiry probe's warning was caught here under xdist)."""
    with capture_logs() as logs:
        worker.request_reload()
        assert worker._reload_check is not None
        await worker._reload_check
    return [e for e in logs if str(e["event"]).startswith("policy_")]


async def test_a_reload_naming_a_sender_whose_ingress_topic_is_not_made_warns_and_stands(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cluster = _Cluster(new_sender=True)
    worker = _worker_with(cluster, monkeypatch, tmp_path)
    logs = await _reload(worker)
    new = party_of_ingress(cluster.senders()[0])
    assert new is not None
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("policy_reloaded", "info"),
        ("policy_reload_topics_missing", "warning"),
    ]
    warning = logs[1]
    assert warning["topics"] == [ingress(new)]
    assert warning["parties"] == [new]
    assert worker.policy is not None
    assert warning["version"] == worker.policy.version
    assert "accord kafka provision" in warning["action"]
    assert "restart would refuse to start" in warning["action"]
    assert cast("_Loop", worker.loop).pending_policy is not None  # the reload stands
    # What the start-up check asks about, no second list: it refuses what this warned of.
    with pytest.raises(ConfigError, match=f"first: {ingress(new)}"):
        await _worker.check_topics(worker.kafka, load_bundle(REPO / "policies"))


async def test_a_reload_whose_topics_all_exist_logs_only_policy_reloaded(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cluster = _Cluster()
    worker = _worker_with(cluster, monkeypatch, tmp_path)
    logs = await _reload(worker)
    assert [e["event"] for e in logs] == ["policy_reloaded"]
    assert len(cluster.senders()) > 1  # the senders' ingress topics were asked about


async def test_a_reload_whose_topics_cannot_be_checked_says_so_and_stands(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    worker = _worker_with(_Cluster(fails=True), monkeypatch, tmp_path)
    logs = await _reload(worker)
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("policy_reloaded", "info"),
        ("policy_reload_topics_unchecked", "warning"),
    ]
    assert cast("_Loop", worker.loop).pending_policy is not None


async def test_an_unexpected_failure_of_the_check_is_said_at_once_by_its_type(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No one awaits the check: an error it does not expect is logged when it happens (its
    type only), not left for asyncio to print as a traceback at the next reload or exit."""

    async def broken(*_: Any, **__: Any) -> list[str]:
        raise RuntimeError("postgresql://kim:s3cret@db/x")

    worker = _worker_with(_Cluster(), monkeypatch, tmp_path)
    monkeypatch.setattr(_worker, "missing_topics", broken)
    logs = await _reload(worker)
    assert [(e["event"], e.get("error")) for e in logs] == [
        ("policy_reloaded", None),
        ("policy_reload_topics_unchecked", "RuntimeError"),
    ]
    assert worker._reload_check is not None
    assert worker._reload_check.exception() is None


async def test_a_reload_keeps_what_was_already_queued_for_every_chain(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A key change the watch queued (keys_loaded and a checkpoint) is not dropped by a
    SIGHUP arriving before the loop took it: the key watch never queues it again."""
    worker = _worker_with(_Cluster(), monkeypatch, tmp_path)
    loop: Any = worker.loop
    loop.pending_policy = lambda _processor: ["keys_loaded", "checkpoint"]
    await _reload(worker)
    processor = SimpleNamespace(policy_loaded=lambda *_a, **_kw: ["policy_loaded"])
    assert loop.pending_policy is not None
    assert loop.pending_policy(processor) == ["keys_loaded", "checkpoint", "policy_loaded"]


async def test_a_refused_or_unchanged_reload_checks_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    worker = _worker_with(_Cluster(), monkeypatch, tmp_path)
    worker.policy = load_bundle(REPO / "policies")
    with capture_logs() as logs:
        worker.request_reload()
        await asyncio.sleep(0)
    assert [e["event"] for e in logs if str(e["event"]).startswith("policy_")] == [
        "policy_unchanged"
    ]
    assert worker._reload_check is None
