"""The console's metrics and probes: outcomes and page names only, never who or whom."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from structlog.testing import capture_logs

from broker.audit import AuditRecord
from broker.config import ConsoleSettings, Settings
from broker.console import ConsoleRun, run_console
from broker.console._metrics import ConsoleMetrics, ConsoleProbes
from broker.devkafka import free_port
from broker.governance import AuditStore
from tests.unit.console.conftest import OFFICER, IndexingSink, csrf_of, sign_in


class Ticks:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def metrics_of(client: TestClient) -> ConsoleMetrics:
    metrics: ConsoleMetrics = client.app.state.console.deps.metrics  # type: ignore[attr-defined]
    return metrics


def sign_ins(client: TestClient, outcome: str) -> float | None:
    return metrics_of(client).registry.get_sample_value(
        "accord_console_sign_ins_total", {"outcome": outcome}
    )


def wrong_password(client: TestClient) -> int:
    token = csrf_of(client.get("/login").text)
    form = {"username": OFFICER, "password": "a wrong guess 123", "csrf": token}
    return client.post("/login", data=form, follow_redirects=False).status_code


def test_sign_ins_are_counted_by_outcome_and_no_name_is_a_label(
    make_client: Callable[..., TestClient], indexed: list[AuditRecord]
) -> None:
    client = make_client(sign_in_failures_per_client=2)
    assert sign_ins(client, "ok") == 0  # every outcome is there from the start
    sign_in(client)
    guesser = TestClient(client.app, base_url="http://127.0.0.1:8765", client=("203.0.113.66", 1))
    for _ in range(3):
        assert wrong_password(guesser) == 401
    assert (sign_ins(client, "ok"), sign_ins(client, "failed"), sign_ins(client, "throttled")) == (
        1, 2, 1,
    )  # fmt: skip
    assert OFFICER not in generate_latest(metrics_of(client).registry).decode()


def test_look_ups_are_counted_by_page_once_audited(client: TestClient, sink: IndexingSink) -> None:
    sign_in(client)
    assert client.get("/").status_code == 200
    assert client.get("/agreements").status_code == 200
    sink.down = True
    assert client.get("/").status_code == 503
    registry = metrics_of(client).registry
    assert registry.get_sample_value("accord_console_lookups_total", {"page": "dashboard"}) == 1
    assert registry.get_sample_value("accord_console_lookups_total", {"page": "agreements"}) == 1
    assert registry.get_sample_value("accord_console_audit_writes_total", {"result": "failed"}) == 1


def test_probes_need_no_session_and_follow_the_store_and_the_audit_log(
    store: AuditStore,
) -> None:
    ticks = Ticks()
    metrics = ConsoleMetrics(CollectorRegistry(), clock=ticks)
    serving = [False]
    probes = ConsoleProbes(metrics, store, window=30.0, serving=lambda: serving[0])
    assert probes.ready().reason == "web server not started"
    assert probes.live().reason == "web server stopped"
    serving[0] = True
    assert probes.live().ok
    assert probes.ready().ok
    metrics.audit_written("dashboard", ok=False)
    assert probes.ready().reason == "audit log unavailable"
    ticks.now += 31  # a failure clears itself: no officer could try again from outside
    assert probes.ready().ok
    metrics.audit_written("dashboard", ok=False)
    metrics.audit_written("dashboard", ok=True)
    assert probes.ready().ok


class BrokenStore:
    def offsets(self, topic: str) -> dict[int, int]:
        del topic
        raise OSError("database at postgresql://user:secret@db/audit is unreachable")


def test_a_store_that_cannot_answer_is_not_ready_and_its_error_stays_out_of_the_answer() -> None:
    probes = ConsoleProbes(
        ConsoleMetrics(CollectorRegistry()), BrokenStore(),  # type: ignore[arg-type]  # a stand-in
        window=30.0, serving=lambda: True,
    )  # fmt: skip
    with capture_logs() as logs:
        check = probes.ready()
    assert check.reason == "index store unavailable"
    assert "secret" not in repr(logs)


async def _get(port: int, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\n\r\n".encode())
    answer = await reader.read()
    writer.close()
    return answer


async def test_a_running_console_serves_probes_and_metrics_on_its_own_port(
    audit_home: Path, store: AuditStore
) -> None:
    ops_port = free_port()
    settings = Settings(home=audit_home, console=ConsoleSettings(port=0, metrics_port=ops_port))
    stop = asyncio.Event()
    runs: list[ConsoleRun] = []
    task = asyncio.create_task(
        run_console(
            settings,
            store,
            kafka=None,  # type: ignore[arg-type]  # never used: no look-up, no indexer
            policy=None,
            index=False,
            started=runs.append,
            stop=stop,
        )
    )
    try:
        for _ in range(100):
            if runs or task.done():
                break
            await asyncio.sleep(0.05)
        assert runs, task.result() if task.done() else "the console did not start"
        ready = await _get(ops_port, "/readyz")
        live = await _get(ops_port, "/livez")
        metrics = await _get(ops_port, "/metrics")
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
    assert ready.startswith(b"HTTP/1.1 200"), ready
    assert live.startswith(b"HTTP/1.1 200"), live
    assert b'accord_console_sign_ins_total{outcome="failed"} 0.0' in metrics
    assert f":{ops_port}/" not in runs[0].url  # the pages are elsewhere
