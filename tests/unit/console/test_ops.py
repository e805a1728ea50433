"""The console's metrics and probes: outcomes and page names only, never who or whom."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from structlog.testing import capture_logs

from broker.audit import AuditRecord
from broker.config import ConsoleSettings, Settings
from broker.console import ConsoleRun, run_console
from broker.console._metrics import ConsoleMetrics, ConsoleProbes
from broker.devkafka import free_port
from broker.errors import ConfigError
from broker.governance import AuditStore
from broker.keys import FileKeyStore
from broker.webauth import TotpBox, UserFile
from tests.unit.console.conftest import OFFICER, PASSWORD, IndexingSink, csrf_of, sign_in


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
    probes = ConsoleProbes(
        metrics, store, window=30.0, serving=lambda: serving[0], accounts=lambda: True
    )
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
        window=30.0, serving=lambda: True, accounts=lambda: True,
    )  # fmt: skip
    with capture_logs() as logs:
        check = probes.ready()
    assert check.reason == "index store unavailable"
    assert "secret" not in repr(logs)


async def _get(port: int, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    answer = await reader.read()
    writer.close()
    return answer


async def test_a_running_console_serves_probes_and_metrics_on_its_own_port(
    audit_home: Path, store: AuditStore, users: UserFile
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


def test_a_console_with_no_account_yet_is_not_ready_until_one_is_added(
    store: AuditStore, tmp_path: Path
) -> None:
    """Ready as soon as add-user has written the file, from the same probes: no restart."""
    users = UserFile(tmp_path / "console" / "users.json", box=TotpBox(bytes(32), "console"))
    probes = ConsoleProbes(
        ConsoleMetrics(CollectorRegistry()), store,
        window=30.0, serving=lambda: True, accounts=users.has_accounts,
    )  # fmt: skip
    assert (probes.ready().ok, probes.ready().reason) == (False, "no accounts yet")
    assert probes.live().ok  # running as it should: not a restart
    users.add("ig.first", "a long enough secret")
    assert probes.ready().ok
    users.remove("ig.first")  # the last account gone: nobody can sign in again
    assert probes.ready().reason == "no accounts yet"
    users.path.write_text("{not json")  # a real fault, said as one, with nothing of the file
    assert probes.ready().reason == "accounts file unreadable"


def test_an_unchanged_users_file_is_not_read_again_by_the_probe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = UserFile(tmp_path / "users.json", box=TotpBox(bytes(32), "console"))
    users.add("ig.first", "a long enough secret")
    reads: list[int] = []
    read = users._read
    monkeypatch.setattr(users, "_read", lambda: reads.append(1) or read())
    assert users.has_accounts()
    assert users.has_accounts()
    assert len(reads) == 1
    users.remove("ig.first")  # replaces the file: read again
    assert not users.has_accounts()
    assert len(reads) == 3  # remove's own read, then the probe's


async def _run_until_started(
    settings: Settings, store: AuditStore, stop: asyncio.Event
) -> tuple[asyncio.Task[None], list[ConsoleRun]]:
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
    for _ in range(100):
        if runs or task.done():
            break
        await asyncio.sleep(0.05)
    assert runs, task.result() if task.done() else "the console did not start"
    return task, runs


async def test_a_console_started_before_its_first_account_serves_and_says_so(
    audit_home: Path, store: AuditStore
) -> None:
    """It used to refuse to start, so a pod crash-looped and add-user could not be exec'd
    into it: now it runs, warns once (no name, no address), is live, and not ready until
    add-user has made an account, which then signs in, without a restart."""
    ops_port = free_port()
    settings = Settings(home=audit_home, console=ConsoleSettings(port=0, metrics_port=ops_port))
    stop = asyncio.Event()
    with capture_logs() as logs:
        task, runs = await _run_until_started(settings, store, stop)
    try:
        assert not runs[0].accounts
        [warning] = [e for e in logs if e["event"] == "console_no_accounts"]
        assert warning == {
            "event": "console_no_accounts",
            "log_level": "warning",
            "command": "accord console add-user NAME",
        }
        not_ready = await _get(ops_port, "/readyz")
        live = await _get(ops_port, "/livez")
        async with httpx.AsyncClient(base_url=runs[0].url) as browser:
            before = await _post_sign_in(browser)
            UserFile(
                settings.console_users_file,
                box=TotpBox.from_keystore(
                    FileKeyStore(audit_home / "keys"), "console", create=True
                ),
            ).add(OFFICER, PASSWORD)  # as 'accord console add-user --no-totp' would, meanwhile
            ready = await _get(ops_port, "/readyz")
            wrong = await _post_sign_in(browser, "a wrong password 123")
            after = await _post_sign_in(browser)
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
    assert not_ready.startswith(b"HTTP/1.1 503"), not_ready
    assert json.loads(not_ready.split(b"\r\n\r\n")[1])["reason"] == "no accounts yet"
    assert live.startswith(b"HTTP/1.1 200"), live
    assert ready.startswith(b"HTTP/1.1 200"), ready
    # No account yet is told to no one on the network: a failed sign-in like any other.
    assert (before.status_code, before.text) == (wrong.status_code, wrong.text)
    assert before.status_code == 401
    assert after.status_code == 303, after.text


async def _post_sign_in(browser: httpx.AsyncClient, password: str = PASSWORD) -> httpx.Response:
    token = csrf_of((await browser.get("/login")).text)
    form = {"username": OFFICER, "password": password, "csrf": token}
    return await browser.post("/login", data=form)


async def test_a_console_whose_users_file_is_damaged_still_refuses_to_start(
    audit_home: Path, store: AuditStore
) -> None:
    """Not a first start but a fault: it stops, as before, rather than serve unready."""
    settings = Settings(home=audit_home, console=ConsoleSettings(port=0))
    settings.console_users_file.parent.mkdir(parents=True)
    settings.console_users_file.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read the console accounts file"):
        await run_console(
            settings, store, kafka=None,  # type: ignore[arg-type]  # never reached
            policy=None, index=False,
        )  # fmt: skip
