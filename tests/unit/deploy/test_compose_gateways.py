"""``accord deploy render --target compose --gateway PARTY``: an agency's publishing gateway,
a service of its own run as the agency with its secrets alone (its bearer token a secret
file), hardened as Accord's others, published on the host's loopback at a port that stays
put, and scraped by Prometheus; only for a party that publishes, and only when named."""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from broker.config import GatewaySettings, load_settings
from broker.deploy import Target, deployment, render_files, write_render
from broker.errors import UsageError
from broker.gateway import check_gateway
from broker.policy import load_bundle
from tests.unit.audit.conftest import (
    Run,
    run_cli,  # noqa: F401  # a re-exported pytest fixture
)

REPO = Path(__file__).resolve().parents[3]
SCHEMA = REPO / "schemas" / "vendor" / "compose-spec" / "compose-spec.json"
BUNDLE = REPO / "policies"
AGENCY, OTHER, HUB = "wmp", "swbh", "cog-tipton"
LISTENER = "sfh-bilston"  # a recipient that publishes nothing
NAME = f"gateway-{AGENCY}"


def _render(out: Path, *gateways: str, desks: tuple[str, ...] = (), brokers: int = 3) -> Any:
    dep = deployment(load_bundle(BUNDLE), BUNDLE, brokers=brokers, partitions=3, image="a:1",
                     desks=desks, gateways=gateways)  # fmt: skip
    files, _ = render_files(dep, Target.COMPOSE, out, external_host="kafka.example.org")
    write_render(out, files)
    return yaml.safe_load(files["compose.yaml"])


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("compose-gateways")
    return out, _render(out, AGENCY, desks=(HUB,))


def test_no_gateway_is_rendered_unless_named(tmp_path: Path) -> None:
    doc = _render(tmp_path / "out", brokers=1)
    assert not any(name.startswith("gateway-") for name in doc["services"])
    assert not any(name.startswith("gateway-token-") for name in doc["secrets"])


def test_the_compose_file_with_a_gateway_is_valid_against_the_compose_specification(
    rendered: tuple[Path, dict[str, Any]],
) -> None:
    _, doc = rendered
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(doc)
    assert NAME in doc["services"]


def test_a_gateway_service_is_hardened_as_accords_others_and_runs_as_its_agency(
    rendered: tuple[Path, dict[str, Any]],
) -> None:
    _, doc = rendered
    services = doc["services"]
    svc = services[NAME]
    assert svc["command"] == ["gateway", "--as", AGENCY]
    for key in ("image", "read_only", "tmpfs", "security_opt", "cap_drop", "restart"):
        assert svc[key] == services["worker"][key], key
    assert svc["depends_on"] == {"provision": {"condition": "service_completed_successfully"}}
    assert "http://127.0.0.1:9469/readyz" in svc["healthcheck"]["test"][-1]
    # Published on the host's loopback only, for the host's TLS proxy, as the desks are.
    assert svc["ports"] == ["127.0.0.1:8780:8780"]
    # It loads no bundle: none mounted, none named, and a new bundle does not recreate it.
    assert not any("/etc/accord/policies" in m for m in svc["volumes"])
    assert "ACCORD_POLICIES" not in svc["environment"]
    assert "labels" not in svc


def test_a_gateway_is_given_its_agencys_secrets_and_token_and_no_one_else_is(
    rendered: tuple[Path, dict[str, Any]],
) -> None:
    out, doc = rendered
    given = {
        name: {s["source"] for s in svc.get("secrets", [])} for name, svc in doc["services"].items()
    }
    assert given[NAME] == {"kafka-ca.pem", f"{AGENCY}.librdkafka.conf",
                           f"keystore-passphrase-{AGENCY}", f"gateway-token-{AGENCY}"}  # fmt: skip
    assert {n for n, s in given.items() if f"gateway-token-{AGENCY}" in s} == {NAME}
    assert {n for n, s in given.items() if f"keystore-passphrase-{AGENCY}" in s} == {NAME}
    # The agency's own keystore, as the SDK opens it.
    assert (
        f"${{ACCORD_KEYS_DIR:-./keys}}/{AGENCY}:/var/lib/accord/keys"
        in doc["services"][NAME]["volumes"]
    )
    token = out / "secrets" / f"gateway-token-{AGENCY}"
    assert token.stat().st_mode & 0o777 == 0o600
    GatewaySettings(token=token.read_text())  # strong enough for the gateway to start
    script = (out / "secret-owners.sh").read_text()
    name = f"gateway-token-{AGENCY}"
    assert f"chown 10001:10001 {name} && chmod 0400 {name}" in script


def test_a_re_render_keeps_the_gateways_token(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _render(out, AGENCY, brokers=1)
    token = (out / "secrets" / f"gateway-token-{AGENCY}").read_text()
    _render(out, AGENCY, OTHER, brokers=1)
    assert (out / "secrets" / f"gateway-token-{AGENCY}").read_text() == token


def _local_env(out: Path, root: Path, service: dict[str, Any]) -> dict[str, str]:
    pairs = (("/run/secrets", str(out / "secrets")), ("/var/lib/accord", str(root / "home")))
    env = {}
    for key, value in service["environment"].items():
        text = str(value)
        for old, new in pairs:
            text = text.replace(old, new)
        env[key] = text
    return env


def test_the_gateway_starts_from_its_rendered_settings_as_its_agency_on_the_internal_listener(
    rendered: tuple[Path, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``check_gateway`` takes them (token, a TLS proxy declared, the host's name), and the
    wrong-token limit counts the caller behind the host's proxy, not the proxy."""
    from broker.kafka import client_settings

    out, doc = rendered
    for key in [k for k in os.environ if k.startswith("ACCORD_")]:
        monkeypatch.delenv(key)
    for key, value in _local_env(out, tmp_path, doc["services"][NAME]).items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    cfg = settings.gateway
    token, hosts, tls = check_gateway(cfg)
    assert token.get_secret_value() == (out / "secrets" / f"gateway-token-{AGENCY}").read_text()
    assert not tls
    assert cfg.tls_terminated_by_proxy
    assert (cfg.host, cfg.port, cfg.forwarded_hops) == ("0.0.0.0", 8780, 1)  # noqa: S104
    # Docker's gateway address, from which the host's proxy arrives, is Docker's to pick.
    assert any(ipaddress.ip_address("172.18.0.1") in n for n in cfg.trusted_proxies or ())
    assert not any(ipaddress.ip_address("203.0.113.9") in n for n in cfg.trusted_proxies or ())
    assert hosts.allows("kafka.example.org")
    assert hosts.allows("127.0.0.1:8780")
    assert not hosts.allows("evil.example")
    assert (cfg.metrics_host, cfg.metrics_port) == ("0.0.0.0", 9469)  # noqa: S104
    assert cfg.metrics_allowed_hosts == (NAME,)
    kafka = client_settings(settings, AGENCY)
    assert kafka.username == AGENCY
    assert kafka.bootstrap == "kafka-1:9092,kafka-2:9092,kafka-3:9092"
    assert settings.keystore.path == tmp_path / "home" / "keys"
    passphrase = settings.keystore_passphrase()
    assert passphrase is not None
    assert passphrase.get_secret_value() == (
        (out / "secrets" / f"keystore-passphrase-{AGENCY}").read_text().strip()
    )


def test_prometheus_scrapes_the_gateway(rendered: tuple[Path, dict[str, Any]]) -> None:
    out, _ = rendered
    config = yaml.safe_load((out / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in config["scrape_configs"]}
    assert jobs[f"accord-{NAME}"] == [f"{NAME}:9469"]


def test_each_gateway_keeps_its_host_port_and_none_takes_a_desks(tmp_path: Path) -> None:
    out = tmp_path / "out"
    doc = _render(out, AGENCY, desks=(HUB,), brokers=1)
    assert doc["services"][NAME]["ports"] == ["127.0.0.1:8780:8780"]
    assert doc["services"][f"desk-{HUB}"]["ports"] == ["127.0.0.1:8766:8766"]
    # The first gateway named later, in id order before wmp, gets the next port; wmp keeps its.
    doc = _render(out, OTHER, AGENCY, desks=(HUB,), brokers=1)
    assert doc["services"][NAME]["ports"] == ["127.0.0.1:8780:8780"]
    assert doc["services"][f"gateway-{OTHER}"]["ports"] == ["127.0.0.1:8781:8780"]
    assert "wmp 8780" in (out / "gateway-ports").read_text()
    # A desk's kept port is not a gateway's to take, nor the reverse.
    (out / "gateway-ports").write_text(f"{AGENCY} 8766\n")
    with pytest.raises(UsageError, match=r"^desk-ports: cog-tipton 8766: the render publishes "
                       r"wmp's gateway on that port; give the desk another$"):  # fmt: skip
        _render(out, AGENCY, desks=(HUB,), brokers=1)


@pytest.mark.parametrize(
    ("party", "says"),
    [("nobody", "--gateway nobody: no such party in the policy bundle"),
     (LISTENER, f"--gateway {LISTENER}: a gateway publishes a party's contact events, and "
                f"{LISTENER} publishes none (not an agency, and no clause sends from it)"),
     ("smethwick-fsp", "--gateway smethwick-fsp: the party is suspended")],
)  # fmt: skip
def test_only_an_active_party_that_publishes_gets_a_gateway(party: str, says: str) -> None:
    with pytest.raises(UsageError) as caught:
        deployment(load_bundle(BUNDLE), BUNDLE, brokers=1, partitions=1, image="a:1",
                   gateways=[party])  # fmt: skip
    assert str(caught.value) == says


def test_the_cli_renders_a_gateway_when_asked(run_cli: Run, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "deploy"
    code, _, stderr = run_cli(["deploy", "render", "--policies", str(BUNDLE), "--out", str(out),
                               "--gateway", AGENCY])  # fmt: skip
    assert code == 0, stderr
    assert NAME in yaml.safe_load((out / "compose.yaml").read_text())["services"]
    code, _, stderr = run_cli(["deploy", "render", "--policies", str(BUNDLE), "--out", str(out),
                               "--gateway", LISTENER])  # fmt: skip
    assert code != 0
    assert f"--gateway {LISTENER}: a gateway publishes" in stderr
    assert "Traceback" not in stderr
