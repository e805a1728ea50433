"""``make demo`` is one of the README's two promises: the whole broker, end to end, on the
embedded default. This runs ``accord demo`` as a user would (its own home, its own Kafka) and
holds it to what it says it does."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from broker.devkafka import KAFKA_VERSION, free_port
from tests.conftest import _accord_home


def _accord(*args: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # our own CLI, fixed arguments
        [sys.executable, "-m", "broker", *args],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


@pytest.fixture
def demo_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    # The Kafka jars are fetched once per machine; a fresh home borrows them.
    (home / f"kafka-{KAFKA_VERSION}").symlink_to(_accord_home() / f"kafka-{KAFKA_VERSION}")
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")}
    return {**inherited, "ACCORD_HOME": str(home)}


def test_the_demo_runs_the_broker_end_to_end_and_serves_the_console(
    demo_env: dict[str, str], tmp_path: Path
) -> None:
    """Kafka, worker, agencies and recipients run; deliveries print; the console answers;
    the audit log it leaves verifies; it stops cleanly and leaves Kafka up, as it says."""
    # The demo reuses a broker's saved ports: start one on free ports so no fixed port is
    # needed (a developer's own `make demo` may hold 9092).
    up = _accord("kafka", "up", "--port", str(free_port()), env=demo_env, timeout=180)
    assert up.returncode == 0, up.stderr
    console_port = free_port()
    try:
        cmd = [sys.executable, "-m", "broker", "demo", "--duration", "30", "--rate", "5",
               "--metrics-port", str(free_port()), "--console-port", str(console_port)]  # fmt: skip
        errors = tmp_path / "demo.stderr"
        with errors.open("w") as err:
            demo = subprocess.Popen(  # our own CLI
                cmd, env=demo_env, stdout=subprocess.PIPE, stderr=err, text=True
            )
        assert demo.stdout is not None
        lines: list[str] = []
        console_answered = False
        deadline = time.monotonic() + 150
        for line in demo.stdout:
            lines.append(line)
            if not console_answered and "governance console at" in line:
                url = f"http://127.0.0.1:{console_port}/login"
                with urllib.request.urlopen(url, timeout=10) as page:  # loopback
                    console_answered = page.status == 200 and b"Sign in" in page.read()
            assert time.monotonic() < deadline, "".join(lines)
        returncode = demo.wait(timeout=60)
        stderr = errors.read_text()
        assert returncode == 0, stderr
        out = "".join(lines)
        assert "Traceback" not in out + stderr
        assert "worker running" in out
        assert console_answered, out
        assert "→ sandwell-coord" in out, out  # a recipient opened what it was sent
        assert "demo stopped; Kafka keeps running" in out

        verify = _accord("audit", "verify", env=demo_env, timeout=120)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert "audit log intact" in verify.stdout
    finally:
        _accord("kafka", "down", env=demo_env, timeout=120)
