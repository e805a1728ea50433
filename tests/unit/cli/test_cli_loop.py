"""Every CLI command's coroutine runs on a loop whose exception handler is
``quiet_leftovers``: a future aiokafka left behind on a TLS connection it closed is a debug
line, not asyncio's "never retrieved" traceback on stderr after the command succeeded."""

from __future__ import annotations

import asyncio
import gc
import logging
import ssl
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from broker.cli import _loop
from broker.config import EventLoop
from broker.kafka import quiet_leftovers

CLI = Path(__file__).resolve().parents[3] / "broker" / "cli"


def _close_notify() -> ssl.SSLError:
    # As the ssl module raises it when a broker's data reaches a connection already closed.
    err = ssl.SSLError(
        1, "[SSL: APPLICATION_DATA_AFTER_CLOSE_NOTIFY] application data after close notify"
    )
    err.library, err.reason = "SSL", "APPLICATION_DATA_AFTER_CLOSE_NOTIFY"
    return err


async def _handler() -> Any:
    return asyncio.get_running_loop().get_exception_handler()


async def _leave_unretrieved(exc: BaseException) -> None:
    future = asyncio.get_running_loop().create_future()
    future.set_exception(exc)  # and dropped: asyncio reports it when it is collected


def _run_leaving(
    exc: BaseException, caplog: pytest.LogCaptureFixture
) -> tuple[list[dict[str, Any]], list[logging.LogRecord]]:
    caplog.set_level(logging.WARNING, logger="asyncio")  # a demo run earlier may have raised it
    with capture_logs() as logs:
        _loop.run(_leave_unretrieved(exc))
        gc.collect()
    return logs, [r for r in caplog.records if r.name == "asyncio" and r.levelno >= logging.WARNING]


def test_run_installs_quiet_leftovers_on_the_loop_it_creates() -> None:
    assert _loop.run(_handler()) is quiet_leftovers


@pytest.mark.parametrize("loop", list(EventLoop))
def test_run_on_installs_quiet_leftovers_on_either_loop(loop: EventLoop) -> None:
    assert _loop.run_on(loop, _handler()) is quiet_leftovers


def test_a_tls_close_notify_future_never_retrieved_is_a_debug_line_and_nothing_on_stderr(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    logs, reported = _run_leaving(_close_notify(), caplog)
    assert logs == [
        {"event": "tls_connection_closed_late", "error": "SSLError", "log_level": "debug"}
    ]
    assert reported == []
    assert capsys.readouterr().err == ""


def test_an_unrelated_future_never_retrieved_still_reaches_asyncios_handler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logs, reported = _run_leaving(ValueError("something else"), caplog)
    assert logs == []
    assert ["never retrieved" in r.getMessage() for r in reported] == [True]


def test_no_cli_module_runs_a_coroutine_without_the_quiet_handler() -> None:
    direct = [p.name for p in CLI.glob("*.py") if "asyncio.run(" in p.read_text()]
    assert direct == ["_loop.py"]  # where run() and run_on() say what they stand for
