"""A console on PostgreSQL is ready again by itself once the server is back: ``/readyz``
answers 503 (``index store unavailable``) while the audit index cannot be reached, then 200,
with no restart of the console (``/livez`` stays 200 throughout: nothing to restart)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker import _pg_live
from broker.config import ConsoleSettings, Settings
from broker.console import ConsoleRun, run_console
from broker.devkafka import free_port
from broker.governance import AuditStore, open_store
from broker.webauth import UserFile
from tests.pg_outage import away, end_sessions


@pytest.fixture
def pg_url(postgres_server: str) -> Iterator[str]:
    from tests.postgres import fresh_database

    yield from fresh_database(postgres_server)


@pytest.fixture
def store(pg_url: str, audit_home: Path) -> Iterator[AuditStore]:
    s = open_store(pg_url, home=audit_home)
    yield s
    s.close()


async def _get(port: int, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    answer = await reader.read()
    writer.close()
    return answer


async def test_readiness_comes_back_by_itself_when_postgresql_does(
    audit_home: Path, store: AuditStore, users: UserFile, pg_url: str, postgres_server: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    del users  # an account: ready hangs on the index alone
    monkeypatch.setattr(_pg_live, "RETRY_AFTER_S", 0.2)  # the wait between tries, shortened
    ops_port = free_port()
    settings = Settings(home=audit_home, console=ConsoleSettings(port=0, metrics_port=ops_port))
    stop = asyncio.Event()
    runs: list[ConsoleRun] = []
    task = asyncio.create_task(
        run_console(
            settings, store,
            kafka=None,  # type: ignore[arg-type]  # never used: no look-up, no indexer
            policy=None, index=False, started=runs.append, stop=stop,
        )
    )  # fmt: skip
    try:
        for _ in range(100):
            if runs or task.done():
                break
            await asyncio.sleep(0.05)
        assert runs, task.result() if task.done() else "the console did not start"
        assert (await _get(ops_port, "/readyz")).startswith(b"HTTP/1.1 200")
        end_sessions(pg_url)  # a restart, over before the next probe
        assert (await _get(ops_port, "/readyz")).startswith(b"HTTP/1.1 200")
        with away(postgres_server, pg_url):
            for _ in range(3):
                down = await _get(ops_port, "/readyz")
                assert down.startswith(b"HTTP/1.1 503"), down
                assert b"index store unavailable" in down
                assert (await _get(ops_port, "/livez")).startswith(b"HTTP/1.1 200")
        ready = b""
        for _ in range(50):  # back within the wait between tries
            ready = await _get(ops_port, "/readyz")
            if ready.startswith(b"HTTP/1.1 200"):
                break
            await asyncio.sleep(0.05)
        assert ready.startswith(b"HTTP/1.1 200"), ready
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
