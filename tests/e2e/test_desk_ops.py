"""``accord desk`` and ``accord desk flags`` answer probes and export metrics on the port
``ACCORD_DESK__METRICS_PORT`` gives, as a container sets it: each subprocess on an embedded,
secured broker, as the co-ordinating team, ``/readyz`` 200 once its pages serve and its
consumer runs (the desk) or once faust has started its agents (the flag service), and
``/metrics`` holding when the broker's TLS certificates expire. A desk started before its first
account runs (live) but is not ready until ``accord desk add-user`` has made one, which then
signs in: no restart, as on Kubernetes, where add-user is exec'd into the running pod."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx2 as httpx
import pytest

from broker.devkafka import EmbeddedKafka, free_port
from broker.policy import load_bundle
from broker.provision import provision
from tests.e2e.test_ops_endpoints import _get, _scraped_once_ready
from tests.e2e.worker_proc import POLICIES, keystore_for
from tests.kafka_helpers import kafka_env, settings_as

pytestmark = pytest.mark.slow

TEAM = "sandwell-coord"


def _start(
    env: dict[str, str], log: Path, *args: str, stdout: bool = False
) -> subprocess.Popen[bytes]:
    """``accord desk ARGS``, its stderr (and with ``stdout``, its stdout too) in ``log``."""
    with log.open("ab") as fh:
        return subprocess.Popen(  # our own CLI
            [sys.executable, "-m", "broker", "desk", *args], env=env,
            stdout=fh if stdout else subprocess.DEVNULL, stderr=fh,
        )  # fmt: skip


def _env(tmp_path: Path, bootstrap: str) -> dict[str, str]:
    """The team's environment on a provisioned broker, its keystore enrolled as keys init
    leaves it (the party's keys and linkage secret), no account yet."""
    policy = load_bundle(POLICIES)
    admin = settings_as(bootstrap, "admin")
    assert admin.credentials_dir is not None
    provision(policy, admin.model_copy(update={"partitions": 1}),
              clients_dir=admin.credentials_dir)  # fmt: skip
    keys = keystore_for(policy, tmp_path / "keys")
    return {**os.environ, "ACCORD_HOME": str(tmp_path), "ACCORD_POLICIES": str(POLICIES),
            "ACCORD_KEYSTORE__PATH": str(keys.path), "ACCORD_KAFKA__PARTITIONS": "1",
            **kafka_env(bootstrap)}  # fmt: skip


def _add_user(env: dict[str, str], name: str) -> None:
    subprocess.run(  # our own CLI
        [sys.executable, "-m", "broker", "desk", "add-user", "--as", TEAM, name,
         "--password-stdin", "--no-totp"],
        env=env, input=PASSWORD.encode(), capture_output=True, check=True, timeout=120,
    )  # fmt: skip


PASSWORD = "a long synthetic passphrase"


def _stop(proc: subprocess.Popen[bytes] | None, log: Path) -> None:
    """SIGTERM, as ``docker stop`` and a pod's end send it: the process must be gone within
    15 seconds with status 0 (its clients closed, its group left). One that blocks its
    shutdown fails here, named, rather than being killed without a word."""
    if proc is None or proc.returncode is not None:
        return
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
            pytest.fail(f"still running 15 s after SIGTERM: {log.read_text()[-3000:]}")
    assert proc.returncode == 0, log.read_text()[-3000:]


async def test_the_desk_and_the_flag_service_are_ready_on_the_port_their_environment_gives(
    isolated_kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    env = _env(tmp_path, isolated_kafka.bootstrap)
    _add_user(env, "kim.ward")
    desk_port, flags_port = free_port(), free_port()
    desk_log, flags_log = tmp_path / "desk.log", tmp_path / "flags.log"
    desk = flags = None
    try:
        desk = _start({**env, "ACCORD_DESK__METRICS_PORT": str(desk_port)}, desk_log,
                      "--as", TEAM, "--port", "0", stdout=True)  # fmt: skip
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
            assert "accord_desk_kafka_contact_timestamp_seconds" in body
        # The pages' /metrics, behind the public proxy with no sign-in, shows only what the
        # pages count: nothing about Kafka (its certificates, when it last answered).
        [url] = re.findall(r"desk of \S+ at (\S+) ;", desk_log.read_text())
        async with httpx.AsyncClient(base_url=url) as browser:
            public = await browser.get("/metrics")
        assert public.status_code == 200
        assert "accord_tls_" not in public.text
        assert "accord_desk_kafka_contact" not in public.text
        # The desk's consumer gone (its process stopped): no answer at all, not a stale 200.
        _stop(desk, desk_log)
        assert (await asyncio.to_thread(_get, desk_port, "/readyz"))[0] == 0
    finally:
        _stop(desk, desk_log)
        _stop(flags, flags_log)
    assert "Traceback" not in desk_log.read_text(), desk_log.read_text()[-3000:]
    assert "Traceback" not in flags_log.read_text(), flags_log.read_text()[-3000:]


async def _status(port: int, path: str) -> tuple[int, dict[str, str]]:
    status, body = await asyncio.to_thread(_get, port, path)
    return status, json.loads(body) if body else {}


async def _sign_in(url: str, name: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url) as browser:
        page = (await browser.get("/login")).text
        found = re.search(r'name="csrf" value="([^"]+)"', page)
        assert found, page
        form = {"username": name, "password": PASSWORD, "csrf": found.group(1)}
        return await browser.post("/login", data=form)


async def test_a_desk_started_before_its_first_account_runs_and_is_ready_once_add_user_made_one(
    isolated_kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    env = _env(tmp_path, isolated_kafka.bootstrap)
    port, log = free_port(), tmp_path / "desk.log"
    desk = _start({**env, "ACCORD_DESK__METRICS_PORT": str(port)}, log, "--as", TEAM,
                  "--port", "0", stdout=True)  # fmt: skip
    try:
        for _ in range(240):  # up, its consumer running: only the account missing
            if "desk of" in log.read_text():
                break
            assert desk.poll() is None, log.read_text()[-3000:]
            await asyncio.sleep(0.5)
        lines = log.read_text().splitlines()
        [url] = re.findall(r"desk of \S+ at (\S+) ;", "\n".join(lines))
        warned = next(i for i, x in enumerate(lines) if x.startswith("WARNING: no desk accounts"))
        assert warned < next(i for i, x in enumerate(lines) if x.startswith("desk of"))
        assert f"'accord desk add-user --as {TEAM} NAME'" in lines[warned]
        assert any('"event": "desk_no_accounts"' in x for x in lines)
        for _ in range(60):
            status, body = await _status(port, "/readyz")
            if body.get("reason") == "no accounts yet":
                break
            await asyncio.sleep(0.5)
        assert (status, body) == (503, {"status": "unavailable", "reason": "no accounts yet"})
        assert await _status(port, "/livez") == (200, {"status": "ok", "reason": "ok"})
        # No account to the network either: a failed sign-in, as for a wrong password.
        assert (await _sign_in(url, "kim.ward")).status_code == 401

        _add_user(env, "kim.ward")  # what kubectl exec runs in the desk's pod

        assert await _status(port, "/readyz") == (200, {"status": "ok", "reason": "ok"})
        signed_in = await _sign_in(url, "kim.ward")
        assert signed_in.status_code == 303, signed_in.text
        assert desk.poll() is None  # the same process throughout
    finally:
        _stop(desk, log)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
