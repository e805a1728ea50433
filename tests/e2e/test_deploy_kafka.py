"""The Kafka a rendered Compose deployment runs is the Kafka these tests run.

``accord deploy render --target compose`` is run for the example bundle (one broker, a
trial). The rendered ``kafka/start.sh`` then starts Apache Kafka from the rendered
``server-1.properties`` with the rendered secrets, exactly as the container would, and the
rendered ``provision`` service's command applies the bundle's topics, logins and ACLs. Only
what the container's mounts and network do is done here instead: ``/run/secrets``,
``/var/lib/...`` and the host names become local paths and 127.0.0.1 on free ports, and
``/opt/kafka/bin``'s two scripts become shims running the same Kafka classes from Accord's
jars. Then an authorised client works and unauthorised ones are refused.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.devkafka import ensure_kafka_jars, free_port
from broker.kafka import read_client_file

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _home() -> Path:
    env = os.environ.get("ACCORD_HOME")
    return Path(env) if env else Path.home() / ".cache" / "accord"


class Local:
    """What the Compose network and mounts would do, done on this machine: each broker's
    three ports become free ports on 127.0.0.1, its data folder a folder of its own."""

    def __init__(self, root: Path, brokers: int) -> None:
        self.root = root
        self.brokers = brokers
        self.ports = {
            n: {"internal": free_port(), "controller": free_port(), "external": free_port()}
            for n in range(1, brokers + 1)
        }
        self.pairs = [
            ("/run/secrets", str(root / "secrets")),
            ("/var/lib/accord", str(root / "home")),
            ("/etc/accord/policies", str(root / "out" / "policies")),
        ]
        for n, p in self.ports.items():
            self.pairs += [
                (f"kafka-{n}:9092", f"127.0.0.1:{p['internal']}"),
                (f"kafka-{n}:9093", f"127.0.0.1:{p['controller']}"),
                (f"localhost:{9094 + n - 1}", f"127.0.0.1:{p['external']}"),
            ]

    def node(self, n: int, text: str) -> str:
        """Broker ``n``'s own configuration: its listeners and its data folder."""
        p = self.ports[n]
        for old, new in (
            ("/var/lib/kafka/data", str(self.root / f"data-{n}")),
            ("INTERNAL://:9092", f"INTERNAL://127.0.0.1:{p['internal']}"),
            ("EXTERNAL://:9094", f"EXTERNAL://127.0.0.1:{p['external']}"),
            ("CONTROLLER://:9093", f"CONTROLLER://127.0.0.1:{p['controller']}"),
        ):
            text = text.replace(old, new)
        return self(text)

    def __call__(self, text: str) -> str:
        for old, new in self.pairs:
            text = text.replace(old, new)
        return text


def _shims(directory: Path, classpath: str) -> Path:
    """``bin/kafka-storage.sh``, ``bin/kafka-server-start.sh`` and ``bin/kafka-run-class.sh``
    as the distribution's run them (``java -cp CLASSPATH`` with the same main classes, the
    last with its arguments as given), on Accord's jars."""
    java = shutil.which("java")
    assert java, "Java is needed to run Kafka"
    bin_dir = directory / "bin"
    bin_dir.mkdir(parents=True)
    for name, main, opts in (
        ("kafka-storage.sh", "kafka.tools.StorageTool", ""),
        ("kafka-server-start.sh", "kafka.Kafka", "-Xms384m -Xmx384m"),
        ("kafka-run-class.sh", "", ""),
    ):
        script = bin_dir / name
        script.write_text(f'#!/bin/bash\nexec {java} {opts} -cp "{classpath}" {main} "$@"\n')
        script.chmod(0o755)
    return directory


BROKERS = 3  # production's shape: replication 3, two in sync for a write
TEAM = "sandwell-coord"  # its desk and flag service are rendered too


@pytest.fixture(scope="module")
def rendered_kafka(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Local, dict[str, Any], dict[int, subprocess.Popen[bytes]]]]:
    root = tmp_path_factory.mktemp("deploy-kafka")
    out = root / "out"
    result = subprocess.run(
        [sys.executable, "-m", "broker", "deploy", "render", "--target", "compose",
         "--brokers", str(BROKERS), "--policies", str(REPO / "policies"), "--out", str(out),
         "--desk", TEAM],
        capture_output=True, text=True, check=False, cwd=root,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    local = Local(root, BROKERS)
    (root / "secrets").mkdir(mode=0o700)
    for secret in (out / "secrets").iterdir():
        target = root / "secrets" / secret.name
        target.write_bytes(local(secret.read_text()).encode())
        target.chmod(0o600)
    kafka_home = _shims(root / "kafka-home", str(ensure_kafka_jars(_home()) / "*"))
    # The one difference from the image: its scripts live in /opt/kafka/bin.
    start = root / "start.sh"
    start.write_text(local((out / "kafka" / "start.sh").read_text()).replace(
        "/opt/kafka", str(kafka_home)))  # fmt: skip
    compose = yaml.safe_load((out / "compose.yaml").read_text())
    nodes: dict[int, subprocess.Popen[bytes]] = {}
    try:
        for n in range(1, BROKERS + 1):
            (root / f"data-{n}").mkdir()
            config = root / f"server-{n}.properties"
            config.write_text(local.node(n, (out / "kafka" / f"server-{n}.properties").read_text()))
            with (root / f"kafka-{n}.out").open("wb") as log:
                nodes[n] = subprocess.Popen(
                    ["bash", str(start), str(config)], stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
        _until_up(local, nodes, root)
        yield local, compose, nodes
    finally:
        for proc in nodes.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _conf(local: Local, principal: str) -> dict[str, str]:
    """The principal's librdkafka file, as a party uses it: a relative CA (a party's files
    name kafka-ca.pem beside them) is the one in the folder the file was handed over in."""
    folder = local.root / "secrets"
    conf = read_client_file(folder / f"{principal}.librdkafka.conf")
    conf["ssl.ca.location"] = str(folder / conf["ssl.ca.location"])
    return conf


def _until_up(local: Local, nodes: dict[int, subprocess.Popen[bytes]], root: Path) -> None:
    """Until the admin sees every broker in the cluster's metadata."""
    from confluent_kafka.admin import AdminClient

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        for n, proc in nodes.items():
            assert proc.poll() is None, (root / f"kafka-{n}.out").read_text()[-3000:]
        try:
            meta = AdminClient({**_conf(local, "admin"), "log_level": 0}).list_topics(timeout=3)
        except Exception:  # noqa: BLE001  # not answering yet
            time.sleep(1)
            continue
        if len(meta.brokers) == len(nodes):
            return
        time.sleep(1)
    logs = " | ".join((root / f"kafka-{n}.out").read_text()[-1000:] for n in nodes)
    raise AssertionError(f"the rendered Kafka cluster did not come up: {logs}")


def _provision(local: Local, compose: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """The rendered ``provision`` service: its command and environment, localised."""
    service = compose["services"]["provision"]
    env = {k: local(str(v)) for k, v in service["environment"].items()}
    argv = [local(a) for a in service["command"]]
    (local.root / "home").mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "broker", *argv],
        env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True, check=False,
        cwd=local.root,
    )  # fmt: skip


def _produce(conf: dict[str, str], topic: str) -> str | None:
    """Produce one record; None on success, else Kafka's error name."""
    from confluent_kafka import Producer

    errors: list[str] = []
    producer = Producer({**conf, "message.timeout.ms": 15000, "log_level": 0})
    producer.produce(
        topic, b"synthetic", on_delivery=lambda err, _m: errors.append(err.name()) if err else None
    )
    producer.flush(20)
    return errors[0] if errors else None


Cluster = tuple[Local, dict[str, Any], dict[int, subprocess.Popen[bytes]]]


def test_the_rendered_kafka_runs_secured_with_the_bundles_access(rendered_kafka: Cluster) -> None:
    from confluent_kafka import Consumer
    from confluent_kafka.admin import AdminClient, ConfigResource

    local, compose, _ = rendered_kafka
    done = _provision(local, compose)
    assert done.returncode == 0, done.stderr
    assert "passwords" in done.stdout  # the rendered logins, not new random ones

    # The bundle's topics exist with the retention the worker expects.
    admin = AdminClient(_conf(local, "admin"))
    topics = admin.list_topics(timeout=10).topics
    assert {"accord.audit", "accord.worker.state", "accord.ingress.wmp",
            "accord.deliver.cog-tipton"} <= set(topics)  # fmt: skip
    described = admin.describe_configs(
        [ConfigResource("topic", "accord.audit"), ConfigResource("topic", "accord.worker.state")]
    )
    configs = {r.name: f.result(timeout=20) for r, f in described.items()}
    assert configs["accord.audit"]["retention.ms"].value == "-1"
    assert configs["accord.audit"]["min.insync.replicas"].value == "2"
    assert configs["accord.worker.state"]["cleanup.policy"].value == "compact"
    audit = topics["accord.audit"].partitions
    assert {len(p.replicas) for p in audit.values()} == {BROKERS}

    # An agency on the external listener, with its rendered client file, writes its topic...
    wmp = _conf(local, "wmp")
    assert wmp["bootstrap.servers"].split(",") == [
        f"127.0.0.1:{p['external']}" for p in local.ports.values()
    ]
    assert _produce(wmp, "accord.ingress.wmp") is None
    # ...and no other agency's; a recipient reads only its own deliveries.
    assert _produce(wmp, "accord.ingress.swbh") == "TOPIC_AUTHORIZATION_FAILED"
    assert _produce(_conf(local, "cog-tipton"), "accord.audit") == "TOPIC_AUTHORIZATION_FAILED"

    # The worker, on the internal listener, reads what the agency wrote, in its group.
    worker = _conf(local, "worker")
    assert worker["bootstrap.servers"].split(",") == [
        f"127.0.0.1:{p['internal']}" for p in local.ports.values()
    ]
    consumer = Consumer({**worker, "group.id": "accord-worker", "auto.offset.reset": "earliest"})
    consumer.subscribe(["accord.ingress.wmp"])
    try:
        got = None
        deadline = time.monotonic() + 60
        while got is None and time.monotonic() < deadline:
            msg = consumer.poll(1)
            if msg is not None and msg.error() is None:
                got = msg.value()
        assert got == b"synthetic"
    finally:
        consumer.close()

    # A wrong password is refused at login; the right one is not.
    from confluent_kafka import KafkaException

    AdminClient({**wmp, "log_level": 0}).list_topics(timeout=10)
    wrong = AdminClient({**wmp, "sasl.password": "not-the-password", "log_level": 0})
    with pytest.raises(KafkaException):
        wrong.list_topics(timeout=5)


def test_provisioning_the_rendered_cluster_again_changes_nothing(rendered_kafka: Cluster) -> None:
    local, compose, _ = rendered_kafka
    first = _provision(local, compose)
    assert first.returncode == 0, first.stderr
    again = _provision(local, compose)
    assert again.returncode == 0, again.stderr
    assert "nothing to change" in again.stdout


def test_the_live_clusters_logins_and_acls_are_the_kubernetes_renders_kafka_users(
    rendered_kafka: Cluster,
) -> None:
    """One source for both targets: what provisioning applied to a real Kafka equals, grant
    for grant, the ACLs of the Strimzi KafkaUsers rendered for the same bundle."""
    from pydantic import SecretStr

    from broker.config import KafkaSettings
    from broker.deploy import acl_grants, deployment, kubernetes_files
    from broker.kafka import read_access
    from broker.policy import load_bundle

    local, compose, _ = rendered_kafka
    assert _provision(local, compose).returncode == 0
    admin = _conf(local, "admin")
    live = read_access(
        KafkaSettings(
            bootstrap=admin["bootstrap.servers"], username="admin",
            password=SecretStr(admin["sasl.password"]), ca_file=Path(admin["ssl.ca.location"]),
        )
    )  # fmt: skip
    bundle = local.root / "out" / "policies"
    dep = deployment(load_bundle(bundle), bundle, brokers=BROKERS, partitions=3, image="a:1")
    users = [
        yaml.safe_load(text)
        for path, text in kubernetes_files(dep).items()
        if path.startswith("kubernetes/kafka/users/")
    ]
    rendered = set().union(*(acl_grants(u) for u in users))
    assert live.grants == rendered
    assert live.users - {"admin"} == {u["metadata"]["name"] for u in users}


def _service_env(local: Local, service: dict[str, Any], **ports: int) -> dict[str, str]:
    """A rendered service's environment, localised; its listening ports moved to free ones
    on loopback (``ports``: setting name -> port)."""
    env = {k: local(str(v)) for k, v in service["environment"].items()}
    for name, port in ports.items():
        env[name] = str(port)
    env = {k: "127.0.0.1" if k.endswith(("__HOST", "__METRICS_HOST")) else v
           for k, v in env.items()}  # fmt: skip
    return {"PATH": os.environ["PATH"], **env}


def _ceremony(local: Local, desk_svc: dict[str, Any]) -> None:
    """The key ceremony and the first account, as docs/deployment.md has them, with the
    rendered passphrase; the home is the one the services' volumes would hold."""
    ceremony = _service_env(local, desk_svc)
    keys = local(desk_svc["environment"]["ACCORD_KEYSTORE__PATH"])
    # The worker's and the IG officer's keystores, made elsewhere in a real ceremony: the
    # desk needs the worker's public keys, taken from a directory the officer signed.
    worker, governance = (str(local.root / "ceremony" / p) for p in ("worker", "governance"))
    entries = [str(local.root / "ceremony" / f"{p}.json") for p in ("worker", TEAM)]
    directory = str(local.root / "ceremony" / "directory.json")

    def accord(*args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "broker", *args], env=ceremony, input=stdin,
            capture_output=True, text=True, check=False, cwd=local.root, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    accord("keys", "init", "--party", TEAM, "--dir", keys)
    accord("keys", "init", "--party", "worker", "--dir", worker)
    accord("keys", "init", "--party", "governance", "--dir", governance)
    accord("keys", "export", "--party", "worker", "--dir", worker, "--out", entries[0])
    accord("keys", "export", "--party", TEAM, "--dir", keys, "--out", entries[1])
    accord("keys", "sign-directory", *entries, "--out", directory, "--dir", governance)
    listed = accord("keys", "list", "--dir", governance, "--party", "governance", "--json")
    anchor = next(
        row["key_id"] for row in map(json.loads, listed.splitlines()) if row["purpose"] == "sign"
    )
    accord("keys", "import", directory, "--dir", keys, "--trust", anchor)
    accord("desk", "add-user", "--as", TEAM, "kim.ward", "--password-stdin", "--no-totp",
           stdin="a long synthetic passphrase")  # fmt: skip


def test_the_rendered_desk_and_flag_service_run_as_their_party_and_are_ready(
    rendered_kafka: Cluster,
) -> None:
    """The rendered ``desk-<party>`` and ``flags-<party>`` commands, with their rendered
    environments, reach the cluster on the internal listener with the party's own login
    and keystore, and answer /readyz 200: the rendered configuration is one that runs."""
    from tests.e2e.test_ops_endpoints import _get

    local, compose, _ = rendered_kafka
    assert _provision(local, compose).returncode == 0
    desk_svc, flags_svc = (compose["services"][f"{k}-{TEAM}"] for k in ("desk", "flags"))
    _ceremony(local, desk_svc)
    ports = {"desk": free_port(), "flags": free_port()}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, svc, extra in (
            ("desk", desk_svc, {"ACCORD_DESK__PORT": free_port()}),
            ("flags", flags_svc, {}),
        ):
            env = _service_env(local, svc, ACCORD_DESK__METRICS_PORT=ports[name], **extra)
            assert env["ACCORD_KAFKA__BOOTSTRAP"].split(",") == [
                f"127.0.0.1:{p['internal']}" for p in local.ports.values()
            ]
            with (local.root / f"{name}.log").open("wb") as log:
                procs[name] = subprocess.Popen(
                    [sys.executable, "-m", "broker", *svc["command"]], env=env,
                    stdout=subprocess.DEVNULL, stderr=log, cwd=local.root,
                )  # fmt: skip
        for name, proc in procs.items():
            deadline = time.monotonic() + 180
            while _get(ports[name], "/readyz")[0] != 200:
                log_text = (local.root / f"{name}.log").read_text()[-3000:]
                assert proc.poll() is None, log_text
                assert time.monotonic() < deadline, log_text
                time.sleep(0.5)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        blocked = []
        for name, proc in procs.items():
            try:
                proc.wait(timeout=15)  # docker stop's SIGTERM: gone well within its grace
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                blocked.append(name)
    # Neither blocked its shutdown nor died of the signal: a clean stop, status 0.
    for name, proc in procs.items():
        log_text = (local.root / f"{name}.log").read_text()[-3000:]
        assert name not in blocked, f"{name} still running 15 s after SIGTERM: {log_text}"
        assert proc.returncode == 0, log_text
    # The flag service's folder is in the home the service's named volume holds.
    assert (local.root / "home" / "desk" / TEAM / "flags").is_dir()


def test_the_cluster_takes_writes_with_one_broker_lost(rendered_kafka: Cluster) -> None:
    """Three replicas, two in sync: a broker's loss stops nothing (run last: it kills one)."""
    local, compose, nodes = rendered_kafka
    assert _provision(local, compose).returncode == 0
    os.killpg(nodes[BROKERS].pid, signal.SIGKILL)
    nodes[BROKERS].wait()
    conf = {**_conf(local, "wmp"), "acks": "all"}
    deadline = time.monotonic() + 90
    while (error := _produce(conf, "accord.ingress.wmp")) is not None:
        assert time.monotonic() < deadline, error
