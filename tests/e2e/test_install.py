"""Accord as users install it, from a wheel into fresh virtualenvs.

- The SDK alone (``pip install accord-sdk``): an agency or recipient gets none of the
  broker's dependencies, and can still publish and receive on the real broker.
- The default install (``pip install accord-broker``): ``accord demo``, one of the README's
  two promises, runs end to end on the embedded default from any folder, with the example
  bundle that ships inside the package.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sqlite3
import subprocess
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from broker._canonical import canonical_json
from broker.config import KafkaSettings
from broker.devkafka import KAFKA_VERSION, free_port
from broker.envelope import Opener, Sealer
from broker.events import Delivery
from broker.kafka import accord_topics, ensure_topics
from broker.keys import FileKeyStore
from broker.synthetic import SyntheticFamilies
from broker.topics import SCHEMA_SHARED, deliver, ingress
from tests.conftest import _accord_home
from tests.e2e.installs import REPO, build_wheels, venv_with
from tests.kafka_helpers import admin_env, clients, free_client_port, read_to_end

pytestmark = pytest.mark.slow

SERVER_ONLY = ("fastapi", "uvicorn", "psycopg", "faust", "cel", "yaml", "prometheus_client",
               "confluent_kafka", "faker", "argon2", "jinja2", "pyotp")  # fmt: skip


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_wheels(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def sdk_bin(wheels: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return venv_with(wheels["accord-sdk"], tmp_path_factory.mktemp("sdk") / "venv")


def _accord(bin_dir: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # the installed CLI, fixed arguments
        [str(bin_dir / "accord"), *args], env=env, capture_output=True, text=True,
        timeout=120, check=False, cwd=bin_dir.parent,
    )  # fmt: skip


def test_the_sdk_install_leaves_out_the_servers_dependencies(sdk_bin: Path) -> None:
    probe = "import importlib.util as u, sys; print([m for m in sys.argv[1:] if u.find_spec(m)])"
    done = subprocess.run(  # the venv's own python
        [str(sdk_bin / "python"), "-c", probe, *SERVER_ONLY],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == "[]"


def test_the_sdk_install_publishes_and_tails_on_the_real_broker(
    sdk_bin: Path, kafka_bootstrap: str, tmp_path: Path
) -> None:
    # Parties of their own: the session broker's shared topics hold other tests' records.
    tag = uuid.uuid4().hex[:6]
    agency, hub = f"agency-install-{tag}", f"hub-install-{tag}"
    # The agency makes its keys with the SDK's own CLI, sealed under its passphrase; the
    # worker's and the hub's public keys would come in the signed directory (here, made
    # beside them in the same keystore).
    passphrase = "synthetic agency passphrase"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")},
        "ACCORD_KEYSTORE__PATH": str(tmp_path / "keys"),
        "ACCORD_KEYSTORE__PASSPHRASE": passphrase,
        "ACCORD_HOME": str(tmp_path / "home"),  # the subscriber's replay memory, not ~/.cache
        **admin_env(kafka_bootstrap),  # these parties have no logins of their own
    }
    made = _accord(sdk_bin, "keys", "init", "--party", agency, env=env)
    assert made.returncode == 0, made.stderr
    assert f"2 new keys for {agency}" in made.stdout
    keys = FileKeyStore(tmp_path / "keys", SecretStr(passphrase))
    for party in ("worker", hub):
        keys.ensure_party(party)
    kafka = clients(kafka_bootstrap)
    asyncio.run(ensure_topics(kafka, accord_topics([agency], [hub], KafkaSettings(partitions=1))))

    # publish: a bulk export, as an agency's system would send it
    fam = SyntheticFamilies(seed=11)
    events = [fam.event("police.domestic_incident", agency) for _ in range(3)]
    export = tmp_path / "export.jsonl"
    export.write_text("".join(json.dumps(e, default=str) + "\n" for e in events))
    published = _accord(sdk_bin, "publish", "--as", agency, str(export), env=env)
    assert published.returncode == 0, published.stderr
    assert "3 published, 0 rejected" in published.stdout
    ours = {e["event_id"] for e in events}
    opener = Opener("worker", keys)
    on_topic = asyncio.run(read_to_end(kafka_bootstrap, ingress(agency)))
    opened = {
        opener.open_kafka(m.value, m.headers, topic=ingress(agency)).event_id
        for m in on_topic
        if m.key and m.key.decode() in ours
    }
    assert opened == ours

    # tail: a delivery sealed to the hub by the worker, opened and printed by the SDK install
    delivery = Delivery(
        event_id=events[0]["event_id"], recipient=hub, outcome="shared", clauses=("c",),
        agreements=("a",), purpose="early_help", lawful_basis={"article6": "public_task"},
        policy_version="v", decided_at=datetime.now(UTC), view={"event.need_level": 3},
    )  # fmt: skip
    sealed = Sealer("worker", keys).seal(
        canonical_json(delivery.model_dump(mode="json")), event_id=delivery.event_id,
        recipient=hub, schema=SCHEMA_SHARED, topic=deliver(hub),
    )  # fmt: skip

    async def send() -> None:
        producer = kafka.producer("test-install")
        await producer.start()
        try:
            await producer.send_and_wait(deliver(hub), sealed.value, headers=sealed.headers)
        finally:
            await producer.stop()

    asyncio.run(send())
    tailed = _accord(sdk_bin, "tail", "--as", hub, "--json", "--max", "1", "--idle", "30",
                     env=env)  # fmt: skip
    assert tailed.returncode == 0, tailed.stderr
    [line] = tailed.stdout.splitlines()
    assert json.loads(line)["event_id"] == delivery.event_id
    assert json.loads(line)["view"] == {"event.need_level": 3}


def test_the_sdk_install_makes_and_rotates_an_agencys_keys_with_keys_init(
    sdk_bin: Path, tmp_path: Path
) -> None:
    """`accord keys init --party wmp` needs none of the servers' dependencies (the enrolment
    secrets it makes are the keystore's own), and leaves a whole keystore, which the
    other keys commands then use."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")}
    env |= {"ACCORD_HOME": str(tmp_path), "ACCORD_KEYSTORE__PASSPHRASE": "synthetic passphrase"}
    keys = tmp_path / "wmp-keys"
    made = _accord(sdk_bin, "keys", "init", "--party", "wmp", "--dir", str(keys), env=env)
    assert made.returncode == 0, made.stderr
    assert "2 new keys for wmp" in made.stdout
    assert "Traceback" not in made.stdout + made.stderr
    store = FileKeyStore(keys, SecretStr("synthetic passphrase"))
    assert store.private_parties() == ["wmp"]
    assert store.current_signing_key("wmp").info.party == "wmp"
    rotated = _accord(sdk_bin, "keys", "rotate", "wmp", "--dir", str(keys), env=env)
    assert rotated.returncode == 0, rotated.stderr
    listed = _accord(sdk_bin, "keys", "list", "--dir", str(keys), "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(rows) == 4
    assert sum(r["in_use"] == "signing" for r in rows) == 1


def test_a_server_command_in_the_sdk_install_says_what_to_install(
    sdk_bin: Path, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")}
    env["ACCORD_HOME"] = str(tmp_path)
    done = _accord(sdk_bin, "policy", "check", str(REPO / "policies"), env=env)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert "install accord-broker in its place" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def server_bin(wheels: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return venv_with(wheels["accord-broker"], tmp_path_factory.mktemp("server") / "venv")


@pytest.fixture
def demo_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    # The Kafka jars are fetched once per machine; a fresh home borrows them.
    (home / f"kafka-{KAFKA_VERSION}").symlink_to(_accord_home() / f"kafka-{KAFKA_VERSION}")
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")}
    return {**inherited, "ACCORD_HOME": str(home)}


def _openings_of_the_referral(server_bin: Path, env: dict[str, str], out: str) -> int:
    """How many times the demo's audit log says the referral loop's referral was opened,
    indexed first (the console's indexer stopped with the demo)."""
    index = _accord(server_bin, "audit", "index", "--once", env=env)
    assert index.returncode == 0, index.stdout + index.stderr
    referral = re.search(r"referral loop 1/4: .*\(referral ([0-9a-f-]{36})\)", out)
    assert referral, out
    with contextlib.closing(sqlite3.connect(Path(env["ACCORD_HOME"]) / "audit.db")) as db:
        [(opened,)] = db.execute(
            "SELECT COUNT(*) FROM audit_records WHERE kind = 'opened' AND event_id = ?",
            (referral.group(1),),
        ).fetchall()
    return int(opened)


def test_the_demo_runs_the_broker_end_to_end_and_serves_the_console(
    server_bin: Path, demo_env: dict[str, str], tmp_path: Path
) -> None:
    """From a plain install, in a folder with no bundle of its own: Kafka, worker, agencies,
    recipients and the team's flag service run; deliveries print; the console answers; the
    audit log it leaves verifies; it stops cleanly and leaves Kafka up, as it says."""
    # The demo reuses a broker's saved ports: start one on free ports so no fixed port is
    # needed (a developer's own `make demo` may hold 9092).
    up = _accord(server_bin, "kafka", "up", "--port", str(free_client_port()), env=demo_env)
    assert up.returncode == 0, up.stderr
    console_port = free_port()
    try:
        cmd = [str(server_bin / "accord"), "demo", "--duration", "40", "--rate", "5",
               "--metrics-port", str(free_port()), "--console-port", str(console_port)]  # fmt: skip
        errors = tmp_path / "demo.stderr"
        with errors.open("w") as err:
            demo = subprocess.Popen(  # the installed CLI
                cmd, env=demo_env, stdout=subprocess.PIPE, stderr=err, text=True, cwd=tmp_path
            )
        assert demo.stdout is not None
        lines: list[str] = []
        console_answered = False
        deadline = time.monotonic() + 300
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
        # The scripted loop: the team's flag service flagged the child, the COG got the
        # referral, the team got the outcome.
        assert "flags 3/3: sandwell-coord's flag service raised domestic-abuse-repeat" in out, out
        assert "referral loop 2/4: the worker decided shared to cog-" in out, out
        assert "referral loop 4/4: the worker decided shared to sandwell-coord" in out, out
        assert "demo stopped; Kafka keeps running" in out

        # Secure by default, the demo included: every keystore it made is sealed under the
        # passphrase it made, which other commands are pointed at, as it printed.
        home = Path(demo_env["ACCORD_HOME"])
        passphrase_file = home / "keystore-passphrase"
        assert f"export ACCORD_KEYSTORE__PASSPHRASE_FILE={passphrase_file}" in out
        metas = list((home / "keys").glob("*/keystore.json"))
        assert len(metas) > 4
        assert {json.loads(m.read_text())["protection"] for m in metas} == {"scrypt"}
        refused = _accord(server_bin, "audit", "verify", env=demo_env)
        assert refused.returncode != 0
        assert "no keystore passphrase" in refused.stderr
        with_it = {**demo_env, "ACCORD_KEYSTORE__PASSPHRASE_FILE": str(passphrase_file)}
        verify = _accord(server_bin, "audit", "verify", env=with_it)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert "audit log intact" in verify.stdout

        # The scripted referral was opened once, by the loop: the demo's printing subscriber
        # reads the hub's topic too and leaves it (two acks were two views in the child's
        # disclosure log).
        assert _openings_of_the_referral(server_bin, with_it, out) == 1
    finally:
        _accord(server_bin, "kafka", "down", env=demo_env)
