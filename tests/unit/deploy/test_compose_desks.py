"""``accord deploy render --target compose --desk PARTY``: each desk and flag service a
service of its own, run as its party with its party's secrets alone, reaching Kafka on the
internal listener, published at a host port that stays put, scraped by Prometheus."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from broker.config import load_settings
from broker.deploy import Target, deployment, render_files, write_render
from broker.policy import load_bundle
from broker.webauth import HostCheck, check_exposure, tls_applies

REPO = Path(__file__).resolve().parents[3]
SCHEMA = REPO / "schemas" / "vendor" / "compose-spec" / "compose-spec.json"
TEAM, HUB, SCHOOL = "sandwell-coord", "cog-tipton", "school-146201"


def _render(out: Path, *desks: str, brokers: int = 3) -> dict[str, Any]:
    bundle = REPO / "policies"
    dep = deployment(load_bundle(bundle), bundle, brokers=brokers, partitions=3, image="a:1",
                     desks=desks)  # fmt: skip
    files, _ = render_files(dep, Target.COMPOSE, out, external_host="kafka.example.org")
    write_render(out, files)
    return dict(yaml.safe_load(files["compose.yaml"]))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("compose-desks")
    return out, _render(out, TEAM, HUB)


def test_the_compose_file_with_desks_is_valid_against_the_compose_specification(
    rendered: tuple[Path, dict[str, Any]],
) -> None:
    _, doc = rendered
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(doc)
    assert {f"desk-{TEAM}", f"flags-{TEAM}", f"desk-{HUB}"} <= set(doc["services"])
    assert f"flags-{HUB}" not in doc["services"]  # a hub raises no flags
    # Their pods' limits on Kubernetes (_kubernetes_desks): the flag service keeps its tables
    # in memory.
    limits = {n: s["deploy"]["resources"]["limits"] for n, s in doc["services"].items()}
    assert limits[f"desk-{TEAM}"] == limits[f"desk-{HUB}"] == {"cpus": "1", "memory": "512m"}
    assert limits[f"flags-{TEAM}"] == {"cpus": "1", "memory": "1g"}


def test_a_desk_service_is_hardened_as_accords_others_and_runs_its_command(
    rendered: tuple[Path, dict[str, Any]],
) -> None:
    _, doc = rendered
    services = doc["services"]
    for name, args in ((f"desk-{TEAM}", ["desk", "--as", TEAM]),
                       (f"flags-{TEAM}", ["desk", "flags", "--as", TEAM])):  # fmt: skip
        svc = services[name]
        assert svc["command"] == args
        for key in ("image", "read_only", "tmpfs", "security_opt", "cap_drop"):
            assert svc[key] == services["worker"][key], key
        assert svc["depends_on"] == {"provision": {"condition": "service_completed_successfully"}}
        env = svc["environment"]
        port = env["ACCORD_DESK__METRICS_PORT"]
        assert port == ("9467" if name.startswith("desk") else "9468")
        assert f"http://127.0.0.1:{port}/readyz" in svc["healthcheck"]["test"][-1]
        assert not any(k.startswith(("ACCORD_WORKER", "ACCORD_DESK-", "ACCORD_FLAGS")) for k in env)
    desk = services[f"desk-{TEAM}"]
    # Published on the host's loopback only, behind the host's proxy, as the console is.
    assert desk["ports"] == ["127.0.0.1:8767:8766"]
    assert desk["environment"]["ACCORD_DESK__FORWARDED_HOPS"] == "1"
    assert (desk["environment"]["ACCORD_DESK__HOST"], desk["environment"]["ACCORD_DESK__PORT"]) == (
        "0.0.0.0",  # noqa: S104  # inside the container
        "8766",
    )
    assert "ports" not in services[f"flags-{TEAM}"]


def test_each_desk_service_is_given_its_own_partys_secrets_and_no_one_elses(
    rendered: tuple[Path, dict[str, Any]],
) -> None:
    _, doc = rendered
    given = {
        name: {s["source"] for s in svc.get("secrets", [])} for name, svc in doc["services"].items()
    }
    for name, party in ((f"desk-{TEAM}", TEAM), (f"flags-{TEAM}", TEAM), (f"desk-{HUB}", HUB)):
        assert given[name] == {
            "kafka-ca.pem", f"{party}.librdkafka.conf", f"keystore-passphrase-{party}",
        }, name  # fmt: skip
    for party in (TEAM, HUB):
        holders = {n for n, s in given.items() if f"{party}.librdkafka.conf" in s}
        assert holders == {"provision", *(f"{k}-{party}" for k in ("desk", "flags"))} & set(given)
        holders = {n for n, s in given.items() if f"keystore-passphrase-{party}" in s}
        assert holders == {n for n in given if n.endswith(f"-{party}")}
    # A recipient not named keeps its login to itself: only provisioning holds it.
    assert {n for n, s in given.items() if f"{SCHOOL}.librdkafka.conf" in s} == {"provision"}
    # Each desk's keystore is its party's, mounted as the worker's is.
    for name, party in ((f"desk-{TEAM}", TEAM), (f"flags-{TEAM}", TEAM), (f"desk-{HUB}", HUB)):
        mounts = doc["services"][name]["volumes"]
        assert f"${{ACCORD_KEYS_DIR:-./keys}}/{party}:/var/lib/accord/keys" in mounts
        assert not any("/keys/worker" in m or f"/{SCHOOL}:" in m for m in mounts)


def test_the_flag_services_data_lives_in_a_named_volume(
    rendered: tuple[Path, dict[str, Any]],
) -> None:
    """Its withdrawn-keep.json must outlive the container (docs/desk.md)."""
    _, doc = rendered
    for name in (f"flags-{TEAM}", f"desk-{TEAM}", f"desk-{HUB}"):
        home = [m for m in doc["services"][name]["volumes"] if m.endswith(":/var/lib/accord")]
        assert home == [f"{name}-home:/var/lib/accord"]
        assert f"{name}-home" in doc["volumes"]  # named: Compose keeps it across containers
        assert doc["services"][name]["environment"]["ACCORD_HOME"] == "/var/lib/accord"


def _local_env(out: Path, root: Path, service: dict[str, Any]) -> dict[str, str]:
    """The service's environment with its container paths made local ones."""
    pairs = (("/run/secrets", str(out / "secrets")), ("/var/lib/accord", str(root / "home")),
             ("/etc/accord/policies", str(out / "policies")))  # fmt: skip
    env = {}
    for key, value in service["environment"].items():
        text = str(value)
        for old, new in pairs:
            text = text.replace(old, new)
        env[key] = text
    return env


@pytest.mark.parametrize("name", [f"desk-{TEAM}", f"flags-{TEAM}"])
def test_a_desk_services_environment_resolves_its_partys_login_on_the_internal_listener(
    rendered: tuple[Path, dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    from broker.config import load_settings
    from broker.kafka import client_settings, read_client_file

    out, doc = rendered
    service = doc["services"][name]
    for key in list(os.environ):
        if key.startswith("ACCORD_"):
            monkeypatch.delenv(key)
    for key, value in _local_env(out, tmp_path, service).items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    kafka = client_settings(settings, TEAM)
    party_file = read_client_file(out / "secrets" / f"{TEAM}.librdkafka.conf")
    assert kafka.username == TEAM
    assert kafka.password is not None
    assert kafka.password.get_secret_value() == party_file["sasl.password"]
    # The file names the external listener, handed to the party; inside, the internal one.
    assert party_file["bootstrap.servers"].startswith("kafka.example.org:9094")
    assert kafka.bootstrap == "kafka-1:9092,kafka-2:9092,kafka-3:9092"
    assert kafka.ca_file == out / "secrets" / "kafka-ca.pem"
    passphrase = settings.keystore_passphrase()
    assert passphrase is not None
    assert passphrase.get_secret_value() == (
        (out / "secrets" / f"keystore-passphrase-{TEAM}").read_text().strip()
    )
    assert settings.keystore.path == tmp_path / "home" / "keys"
    assert settings.policies == out / "policies"
    assert settings.desk.metrics_host == "0.0.0.0"  # noqa: S104  # Prometheus is another container
    assert settings.desk.metrics_port == (9467 if name.startswith("desk") else 9468)
    assert settings.desk_users_file(TEAM) == tmp_path / "home" / "desk" / TEAM / "users.json"


def test_a_desk_keeps_its_host_port_when_desks_are_added_or_removed(tmp_path: Path) -> None:
    out = tmp_path / "out"

    def ports(doc: dict[str, Any]) -> dict[str, list[str]]:
        return {n: s["ports"] for n, s in doc["services"].items() if n.startswith("desk-")}

    assert ports(_render(out, TEAM, brokers=1)) == {f"desk-{TEAM}": ["127.0.0.1:8766:8766"]}
    # A hub sorting before the team is added: the team's desk stays where it was.
    assert ports(_render(out, TEAM, HUB, brokers=1)) == {
        f"desk-{TEAM}": ["127.0.0.1:8766:8766"], f"desk-{HUB}": ["127.0.0.1:8767:8766"],
    }  # fmt: skip
    # The team's desk removed: the hub keeps its port, and the team's is not given away.
    assert ports(_render(out, HUB, SCHOOL, brokers=1)) == {
        f"desk-{HUB}": ["127.0.0.1:8767:8766"], f"desk-{SCHOOL}": ["127.0.0.1:8768:8766"],
    }  # fmt: skip
    assert ports(_render(out, TEAM, HUB, brokers=1))[f"desk-{TEAM}"] == ["127.0.0.1:8766:8766"]
    # A render with no desk at all keeps the assignments for later.
    _render(out, brokers=1)
    assert (out / "desk-ports").read_text().splitlines()[-3:] == [
        f"{HUB} 8767", f"{TEAM} 8766", f"{SCHOOL} 8768",
    ]  # fmt: skip


def test_a_broken_desk_ports_file_is_one_line_not_a_reassignment(tmp_path: Path) -> None:
    from broker.errors import UsageError

    out = tmp_path / "out"
    out.mkdir()
    (out / "desk-ports").write_text(f"{TEAM} 8766\n{HUB} 8766\n")
    with pytest.raises(UsageError, match="two desks share a port"):
        _render(out, TEAM, brokers=1)
    (out / "desk-ports").write_text(f"{TEAM} eighty\n")
    with pytest.raises(UsageError, match="line 1: not 'party port'"):
        _render(out, TEAM, brokers=1)


def test_naming_a_desk_adds_its_passphrase_and_changes_no_secret(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _render(out, brokers=1)
    before = {p.name: p.read_bytes() for p in (out / "secrets").iterdir()}
    _render(out, TEAM, brokers=1)
    after = {p.name: p.read_bytes() for p in (out / "secrets").iterdir()}
    assert {k: after[k] for k in before} == before
    assert set(after) - set(before) == {f"keystore-passphrase-{TEAM}"}
    assert (out / "secrets" / f"keystore-passphrase-{TEAM}").stat().st_mode & 0o077 == 0


def test_a_partys_client_file_made_with_its_desk_still_names_the_external_listener(
    tmp_path: Path,
) -> None:
    """It is the file handed to the party: its desk's container is told the internal one."""
    from broker.kafka import read_client_file

    out = tmp_path / "out"
    _render(out, TEAM, brokers=1)
    conf = read_client_file(out / "secrets" / f"{TEAM}.librdkafka.conf")
    assert conf["bootstrap.servers"] == "kafka.example.org:9094"
    assert conf["ssl.ca.location"] == "kafka-ca.pem"


def test_prometheus_scrapes_each_desk_process_and_the_owners_script_covers_its_secrets(
    rendered: tuple[Path, dict[str, Any]],
) -> None:
    out, _ = rendered
    config = yaml.safe_load((out / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in config["scrape_configs"]}
    assert jobs[f"accord-desk-{TEAM}"] == [f"desk-{TEAM}:9467"]
    assert jobs[f"accord-flags-{TEAM}"] == [f"flags-{TEAM}:9468"]
    assert jobs[f"accord-desk-{HUB}"] == [f"desk-{HUB}:9467"]
    script = (out / "secret-owners.sh").read_text()
    for party in (TEAM, HUB):
        secret = f"keystore-passphrase-{party}"
        assert f"chown 10001:10001 {secret} && chmod 0400 {secret}" in script


def test_a_render_for_another_bundle_copy_with_desks_still_renders(tmp_path: Path) -> None:
    """The bundle travels with the deployment: the desks read the same policies folder."""
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "policies", bundle, ignore=shutil.ignore_patterns("scenarios"))
    dep = deployment(load_bundle(bundle), bundle, brokers=1, partitions=1, image="a:1",
                     desks=[TEAM])  # fmt: skip
    files, _ = render_files(dep, Target.COMPOSE, tmp_path / "out")
    doc = yaml.safe_load(files["compose.yaml"])
    for name in (f"desk-{TEAM}", f"flags-{TEAM}"):
        assert "./policies:/etc/accord/policies:ro" in doc["services"][name]["volumes"]
        assert doc["services"][name]["environment"]["ACCORD_POLICIES"] == "/etc/accord/policies"


def test_a_changed_bundle_changes_the_services_that_read_it_only_when_they_start(
    tmp_path: Path,
) -> None:
    """The console, a desk and a flag service read the bundle when they start: its version,
    a label, changes their configuration, so ``docker compose up -d`` recreates them. The
    worker reloads on SIGHUP and the indexer reads no bundle: theirs do not change."""
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "policies", bundle, ignore=shutil.ignore_patterns("scenarios"))

    def services() -> tuple[str, dict[str, Any]]:
        policy = load_bundle(bundle)
        dep = deployment(policy, bundle, brokers=1, partitions=1, image="a:1", desks=[TEAM])
        files, _ = render_files(dep, Target.COMPOSE, tmp_path / "out")
        return dep.bundle_version, yaml.safe_load(files["compose.yaml"])["services"]

    version, before = services()
    rules = bundle / "flags.yaml"
    rules.write_text(rules.read_text().replace("contacts >= 3", "contacts >= 4"))
    new_version, after = services()
    assert new_version != version
    for name in ("console", f"desk-{TEAM}", f"flags-{TEAM}"):
        assert before[name]["labels"] == {"accord.bundle-version": version}, name
        assert after[name]["labels"] == {"accord.bundle-version": new_version}, name
    for name in ("worker", "indexer"):
        assert "labels" not in after[name]
        assert after[name] == before[name], name


@pytest.mark.parametrize(
    ("port", "brokers", "what"),
    [(8765, 1, "the console"), (9090, 1, "Prometheus"), (3000, 1, "Grafana"),
     (9094, 1, "Kafka broker 1's external listener"),
     (9096, 3, "Kafka broker 3's external listener")],
)  # fmt: skip
def test_a_desk_port_the_render_publishes_for_something_else_is_refused_in_one_line(
    tmp_path: Path, port: int, brokers: int, what: str
) -> None:
    from broker.errors import UsageError

    out = tmp_path / "out"
    out.mkdir()
    (out / "desk-ports").write_text(f"{HUB} {port}\n")
    with pytest.raises(UsageError, match=f"desk-ports: {HUB} {port}: the render publishes {what}"):
        _render(out, HUB, brokers=brokers)


def test_a_port_past_the_brokers_rendered_is_a_desks_and_new_desks_skip_reserved_ports(
    tmp_path: Path,
) -> None:
    from broker.deploy._secrets import desk_host_ports

    out = tmp_path / "out"
    out.mkdir()
    (out / "desk-ports").write_text(f"{HUB} 9096\n")
    doc = _render(out, HUB, brokers=1)  # one broker: 9096 is no one else's
    assert doc["services"][f"desk-{HUB}"]["ports"] == ["127.0.0.1:9096:8766"]
    assert desk_host_ports([TEAM, HUB], {}, {8766: "something"}) == {HUB: 8767, TEAM: 8768}


@pytest.mark.parametrize("service", ["console", f"desk-{TEAM}", f"desk-{HUB}"])
def test_each_web_app_starts_from_its_rendered_settings_and_answers_only_its_names(
    rendered: tuple[Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch, service: str
) -> None:
    """Bound to 0.0.0.0 in its container, an app with no allowed host names, or with no TLS
    declared in front, would refuse to start: the render names the host's own names and its
    TLS proxy, and behind that proxy the cookies are Secure and HTTPS is kept to (HSTS)."""
    _, doc = rendered
    env = doc["services"][service]["environment"]
    for name in [n for n in os.environ if n.startswith("ACCORD_")]:
        monkeypatch.delenv(name)
    section = "console" if service == "console" else "desk"
    for name, value in env.items():
        if name.startswith(f"ACCORD_{section.upper()}__"):  # the app's own, no secret file
            monkeypatch.setenv(name, value)
    cfg = getattr(load_settings(), section)
    assert check_exposure(cfg, app=section) is False  # it starts, TLS being the host proxy's
    assert tls_applies(cfg)
    hosts = HostCheck.of(cfg, setting="under test")
    assert hosts.allows("kafka.example.org")  # --external-host: the host's own name
    assert hosts.allows("127.0.0.1:8765")  # nginx's default Host to a loopback upstream
    assert not hosts.allows("evil.example")
    assert cfg.forwarded_hops == 1  # so the session cookie is Secure
    # Docker's gateway address, from which the host's proxy arrives, is Docker's to pick;
    # a guesser's address names none.
    assert any(ipaddress.ip_address("172.18.0.1") in n for n in cfg.trusted_proxies or ())
    assert not any(ipaddress.ip_address("203.0.113.9") in n for n in cfg.trusted_proxies or ())
