"""`accord kafka up/status/down` drive a real broker, as a user would from a shell."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kafka_helpers import free_client_port


def _accord(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=180,
    )


@pytest.mark.slow
def test_kafka_up_status_down_round_trip(tmp_path: Path) -> None:
    data = tmp_path / "kafka-data"
    env = dict(os.environ)
    port = free_client_port()
    up = _accord("kafka", "up", "--port", str(port), "--data", str(data), env=env)
    try:
        assert up.returncode == 0, up.stderr
        assert f"127.0.0.1:{port}" in up.stdout

        status = _accord("kafka", "status", "--data", str(data), env=env)
        assert status.returncode == 0
        assert "running" in status.stdout
        assert f"127.0.0.1:{port}" in status.stdout
    finally:
        down = _accord("kafka", "down", "--data", str(data), env=env)
    assert down.returncode == 0
    assert "stopped" in down.stdout

    after = _accord("kafka", "status", "--data", str(data), env=env)
    assert after.returncode == 3
    assert "not running" in after.stdout


@pytest.mark.parametrize(
    ("taken", "named"),
    [(0, "port {port} on"), (1, "the controller's port {port} on")],
    ids=["client-port", "controller-port"],
)
def test_kafka_up_on_a_taken_port_is_one_clear_line_naming_it(
    tmp_path: Path, taken: int, named: str
) -> None:
    """The controller's port (--port + 1) is not on the command line: the error says which."""
    import socket

    port = free_client_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port + taken))
        busy.listen()
        result = _accord(
            "kafka", "up", "--port", str(port), "--data", str(tmp_path / "d"), env=dict(os.environ)
        )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"accord: error: {named.format(port=port + taken)}"), lines[0]
    assert "Traceback" not in result.stderr
