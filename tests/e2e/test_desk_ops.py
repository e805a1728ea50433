"""``accord desk`` and ``accord desk flags`` answer probes and export metrics on the port
``ACCORD_DESK__METRICS_PORT`` gives, as a container sets it: each subprocess on an embedded,
secured broker, as the co-ordinating team, ``/readyz`` 200 once its pages serve and its
consumer runs (the desk) or once faust has started its agents (the flag service), and
``/metrics`` holding when the broker's TLS certificates expire."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from broker.devkafka import EmbeddedKafka, free_port
from broker.policy import load_bundle
from broker.provision import provision
from tests.e2e.test_ops_endpoints import _get, _scraped_once_ready
from tests.e2e.worker_proc import POLICIES, keystore_for
from tests.kafka_helpers import kafka_env, settings_as

pytestmark = pytest.mark.slow

TEAM = "sandwell-coord"


def _start(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as fh:
        return subprocess.Popen(  # our own CLI
            [sys.executable, "-m", "broker", "desk", *args], env=env,
            stdout=subprocess.DEVNULL, stderr=fh,
        )  # fmt: skip


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


async def test_the_desk_and_the_flag_service_are_ready_on_the_port_their_environment_gives(
    isolated_kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    bootstrap = isolated_kafka.bootstrap
    policy = load_bundle(POLICIES)
    admin = settings_as(bootstrap, "admin")
    assert admin.credentials_dir is not None
    provision(policy, admin.model_copy(update={"partitions": 1}),
              clients_dir=admin.credentials_dir)  # fmt: skip
    keys = keystore_for(policy, tmp_path / "keys")
    env = {**os.environ, "ACCORD_HOME": str(tmp_path), "ACCORD_POLICIES": str(POLICIES),
           "ACCORD_KEYSTORE__PATH": str(keys.path), "ACCORD_KAFKA__PARTITIONS": "1",
           **kafka_env(bootstrap)}  # fmt: skip
    subprocess.run(  # our own CLI
        [sys.executable, "-m", "broker", "desk", "add-user", "--as", TEAM, "kim.ward",
         "--password-stdin", "--no-totp"],
        env=env, input=b"a long synthetic passphrase", capture_output=True, check=True,
        timeout=120,
    )  # fmt: skip
    desk_port, flags_port = free_port(), free_port()
    desk_log, flags_log = tmp_path / "desk.log", tmp_path / "flags.log"
    desk = flags = None
    try:
        desk = _start({**env, "ACCORD_DESK__METRICS_PORT": str(desk_port)}, desk_log,
                      "--as", TEAM, "--port", "0")  # fmt: skip
        flags = _start({**env, "ACCORD_DESK__METRICS_PORT": str(flags_port)}, flags_log,
                       "flags", "--as", TEAM, "--policies", str(POLICIES))  # fmt: skip
        bodies = await asyncio.gather(
            _scraped_once_ready(desk_port, desk, desk_log),
            _scraped_once_ready(flags_port, flags, flags_log),
        )
        for port in (desk_port, flags_port):
            status, body = await asyncio.to_thread(_get, port, "/livez")
            assert (status, json.loads(body)) == (200, {"status": "ok", "reason": "ok"})
            status, body = await asyncio.to_thread(_get, port, "/readyz")
            assert (status, json.loads(body)) == (200, {"status": "ok", "reason": "ok"})
        for body in bodies:  # from each process's own registry
            assert "accord_tls_certificate_expiry_timestamp_seconds" in body
        # The desk's consumer gone (its process stopped): no answer at all, not a stale 200.
        _stop(desk)
        assert (await asyncio.to_thread(_get, desk_port, "/readyz"))[0] == 0
    finally:
        _stop(desk)
        _stop(flags)
    assert "Traceback" not in desk_log.read_text(), desk_log.read_text()[-3000:]
    assert "Traceback" not in flags_log.read_text(), flags_log.read_text()[-3000:]
