"""`accord desk flags` runs on faust's event loop, not broker.cli's: a TLS close on it ends
within TLS_CLOSE_S, as on every other service's loop, though the peer never answers it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.cli import _desk_flags
from tests.kafka_helpers import free_port
from tests.unit.audit.conftest import Run
from tests.unit.cli.test_desk_flags_cli import REPO
from tests.unit.kafka.test_tls_close import SilentPeer, _open_then_close

POLICIES = ["--policies", str(REPO / "policies")]


@pytest.fixture
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SilentPeer]:
    server = SilentPeer(tmp_path_factory.mktemp("peer"))  # its own folder: not ACCORD_HOME
    yield server
    server.stop()


def test_the_flag_services_loop_bounds_a_tls_close_the_peer_never_answers(
    run_cli: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    peer: SilentPeer,
) -> None:  # fmt: skip
    """Without the bound the standard library's loop waits 30 s for it (test_tls_close)."""
    import faust

    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    assert run_cli(["keys", "init", *POLICIES])[0] == 0
    monkeypatch.setenv("ACCORD_KAFKA__SECURITY_PROTOCOL", "PLAINTEXT")
    monkeypatch.setenv("ACCORD_KAFKA__BOOTSTRAP", f"127.0.0.1:{free_port()}")

    async def no_kafka(_kafka: Any, _party: str) -> None:
        return None

    ran: list[bool] = []

    def run(worker: faust.Worker) -> None:
        # The loop faust runs the service on, as execute_from_commandline does.
        assert worker.loop is worker.app.loop
        worker.loop.run_until_complete(_open_then_close(peer.port, peer.client_context()))
        ran.append(True)

    monkeypatch.setattr(_desk_flags, "_preflight", no_kafka)
    monkeypatch.setattr(faust.Worker, "execute_from_commandline", run)
    code, _err = run_cli(["desk", "flags", "--as", "sandwell-coord", *POLICIES])[::2]
    assert (code, ran) == (0, [True])
    assert peer.closes_read == 1  # the peer read the close and left it unanswered
