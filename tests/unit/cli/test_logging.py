"""The long-running commands' JSON logs: tracebacks without their frames' local variables."""

from __future__ import annotations

import json

import pytest
import structlog

from broker.cli._logging import configure_logging


def test_a_logged_traceback_never_carries_local_values(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging()
    log = structlog.get_logger("accord.test")

    def handle(nhs_number: str) -> None:
        family_name = "Quillfeather"  # noqa: F841  # a local the traceback must not show
        raise ValueError("invalid event")

    try:
        handle("9997017463")
    except ValueError:
        log.exception("event_failed")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert json.loads(line)["event"] == "event_failed"
    assert "invalid event" in line  # the traceback itself is there
    assert "9997017463" not in line
    assert "Quillfeather" not in line
