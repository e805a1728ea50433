"""``accord audit index --follow``, a service, logs its start as the worker and the desk do:
``audit_index_started`` with what it indexes into and from which topic, nothing personal;
``--once``, a command, keeps stderr for errors."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from structlog.testing import capture_logs

from broker.cli import _audit
from broker.config import Settings


class _Indexer:
    store = SimpleNamespace(backend="sqlite")
    topic = "accord.audit"
    metrics = SimpleNamespace(registry=None)
    kafka = SimpleNamespace(settings=None)
    live = ready = None

    async def run(self, **_: Any) -> str:
        return "summary"


@pytest.mark.parametrize("follow", [True, False])
async def test_the_indexer_logs_its_start_when_it_follows(
    follow: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    @contextlib.asynccontextmanager
    async def serving_ops(*_: Any, **__: Any) -> AsyncIterator[None]:
        yield

    monkeypatch.setattr("broker.ops.serving_ops", serving_ops)
    with capture_logs() as logs:
        got = await _audit._run_indexer(
            cast("Any", _Indexer()), Settings(home=tmp_path), follow=follow
        )
    assert got == "summary"
    started = [e for e in logs if e["event"] == "audit_index_started"]
    if follow:
        assert started == [
            {
                "event": "audit_index_started",
                "log_level": "info",
                "store": "sqlite",
                "follow": True,
                "topic": "accord.audit",
            }
        ]
    else:
        assert started == []
