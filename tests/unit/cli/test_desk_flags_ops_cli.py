"""`accord desk flags` as an operator meets it: a hub or school refused in one line, a metrics
port in use said in one line before Kafka, and, once running, the rules it runs logged and
SIGHUP ignored with a line of its own."""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path
from typing import Any

import pytest

from broker.cli import _desk_flags
from tests.kafka_helpers import free_port
from tests.unit.audit.conftest import Run
from tests.unit.cli.test_desk_flags_cli import REPO

POLICIES = ["--policies", str(REPO / "policies")]


@pytest.mark.parametrize(
    ("party", "kind"), [("cog-wednesbury", "a hub"), ("school-146201", "a school")]
)
def test_a_hub_or_school_is_refused_in_one_line_not_sent_to_provision(
    party: str, kind: str, run_cli: Run, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:  # fmt: skip
    """Provisioning makes flag topics for co-ordinating teams only: 'run accord kafka
    provision' (what it said) changed nothing."""
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    code, err = run_cli(["desk", "flags", "--as", party, *POLICIES])[::2]
    assert code != 0
    assert err.strip() == (
        f"accord: error: flag services are for co-ordinating teams; {party} is {kind}"
    )


def test_a_metrics_port_in_use_is_one_line_before_kafka(
    run_cli: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """It was faust's 34-line traceback around the ops server's error."""
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    monkeypatch.setenv("ACCORD_KAFKA__SECURITY_PROTOCOL", "PLAINTEXT")
    monkeypatch.setenv("ACCORD_KAFKA__BOOTSTRAP", f"127.0.0.1:{free_port()}")  # no Kafka
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        monkeypatch.setenv("ACCORD_DESK__METRICS_PORT", str(port))
        code, err = run_cli(["desk", "flags", "--as", "sandwell-coord", *POLICIES])[::2]
    assert code != 0
    (line,) = err.strip().splitlines()
    assert line.startswith(f"accord: error: cannot listen on 127.0.0.1:{port}: ")
    assert line.endswith("(set ACCORD_DESK__METRICS_PORT to a free port, or stop what holds it)")


def test_the_running_service_logs_its_rules_and_ignores_sighup(
    run_cli: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Kafka's checks and faust's run stood in for: SIGHUP, sent while faust would run,
    used to end the service without a word."""
    import faust

    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    assert run_cli(["keys", "init", *POLICIES])[0] == 0
    monkeypatch.setenv("ACCORD_KAFKA__SECURITY_PROTOCOL", "PLAINTEXT")
    monkeypatch.setenv("ACCORD_KAFKA__BOOTSTRAP", f"127.0.0.1:{free_port()}")

    async def no_kafka(_kafka: Any, _party: str) -> None:
        return None

    ran: list[bool] = []

    def run(_worker: Any) -> None:
        os.kill(os.getpid(), signal.SIGHUP)  # the default action would end pytest
        ran.append(True)

    monkeypatch.setattr(_desk_flags, "_preflight", no_kafka)
    monkeypatch.setattr(faust.Worker, "execute_from_commandline", run)
    before = signal.getsignal(signal.SIGHUP)
    code, err = run_cli(["desk", "flags", "--as", "sandwell-coord", *POLICIES])[::2]
    assert (code, ran) == (0, [True])
    assert signal.getsignal(signal.SIGHUP) == before
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    events = {line["event"]: line for line in lines}
    started = events["flags_started"]
    assert started["party"] == "sandwell-coord"
    assert started["version"].startswith("sha256:")
    assert {r["id"] for r in started["rules"]} >= {"multi-agency", "need-level-4"}
    assert events["flags_sighup_ignored"]["hint"] == "restart to load a new bundle"
    assert events["flags_sighup_ignored"]["level"] == "warning"
