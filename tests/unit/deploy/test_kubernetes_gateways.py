"""``accord deploy render --target kubernetes --gateway PARTY``: an agency's publishing
gateway runs as the agency with only its Secrets (its bearer token a read-only file), hardened
and probed as every pod, starts from the settings it is given, and is a diff of its own files;
a dropped gateway's token Secret is named for deletion."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from broker.config import load_settings
from broker.deploy import Deployment, deployment, platform_secrets, removal_commands, write_render
from broker.deploy._kubernetes import kubernetes_files
from broker.deploy._monitoring import monitoring_resources
from broker.gateway import check_gateway
from broker.policy import load_bundle
from tests.unit.deploy.pods import SECRET_FILE_VARS, secret_behind

POLICIES = Path("policies")
KUSTOMIZATION = "kubernetes/kustomization.yaml"
AGENCY, HUB = "wmp", "cog-tipton"
NAME = f"gateway-{AGENCY}"
BASE = f"kubernetes/accord/{NAME}"
TOKEN_SECRET = f"accord-gateway-token-{AGENCY}"  # a Secret's name


def _dep(*gateways: str, desks: tuple[str, ...] = ()) -> Deployment:
    return deployment(load_bundle(POLICIES), POLICIES, brokers=3, partitions=3,
                      image="accord-broker:test", desks=desks, gateways=gateways)  # fmt: skip


@pytest.fixture(scope="module")
def docs() -> dict[str, dict[str, Any]]:
    files = kubernetes_files(_dep(AGENCY, desks=(HUB,)))
    return {path: yaml.safe_load(text) for path, text in files.items()}


def _pod(docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = docs[f"{BASE}/deployment.yaml"]["spec"]["template"]["spec"]
    return spec


def test_the_gateways_manifests_validate_strictly_against_kubernetes_1_35(
    docs: dict[str, dict[str, Any]],
) -> None:
    mine = {p: d for p, d in docs.items() if NAME in p}
    assert {p.removeprefix("kubernetes/accord/") for p in mine} == {
        f"{NAME}/deployment.yaml", f"{NAME}/ops-service.yaml", f"{NAME}/service.yaml",
        f"network-policies/ingress-{NAME}.yaml",
    }  # fmt: skip
    for path, doc in mine.items():
        try:
            kubernetes_validate.validate(doc, "1.35.0", strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path}: {exc.message}")


def test_the_gateway_pod_runs_unprivileged_read_only_with_resources_and_probes(
    docs: dict[str, dict[str, Any]],
) -> None:
    pod = _pod(docs)
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["args"] == ["gateway", "--as", AGENCY]
    for c in (*pod["initContainers"], container):
        assert c["securityContext"] == {"allowPrivilegeEscalation": False,
                                        "readOnlyRootFilesystem": True,
                                        "capabilities": {"drop": ["ALL"]}}  # fmt: skip
    assert {"requests", "limits"} <= set(container["resources"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"ops": 9469, "http": 8780}
    for probe, path in (("startupProbe", "/livez"), ("livenessProbe", "/livez"),
                        ("readinessProbe", "/readyz")):  # fmt: skip
        assert container[probe]["httpGet"] == {"path": path, "port": "ops"}
    ops = docs[f"{BASE}/ops-service.yaml"]
    assert ops["spec"]["ports"] == [{"name": "ops", "port": 9469, "targetPort": "ops"}]
    assert ops["metadata"]["annotations"]["prometheus.io/port"] == "9469"
    web = docs[f"{BASE}/service.yaml"]
    assert web["metadata"]["name"] == f"accord-{NAME}"
    assert web["spec"]["ports"] == [{"name": "http", "port": 8780, "targetPort": "http"}]


def test_it_keeps_nothing_and_loads_no_bundle_so_it_rolls(docs: dict[str, dict[str, Any]]) -> None:
    deploy = docs[f"{BASE}/deployment.yaml"]
    assert "strategy" not in deploy["spec"]  # the default, RollingUpdate: no volume to wait on
    assert "annotations" not in deploy["spec"]["template"]["metadata"]
    volumes = {v["name"]: v for v in _pod(docs)["volumes"]}
    assert "persistentVolumeClaim" not in volumes["home"]
    assert "policies" not in volumes
    assert f"{BASE}/data.yaml" not in docs


def test_the_gateway_pod_reads_only_its_agencys_secrets_and_its_token_as_a_read_only_file(
    docs: dict[str, dict[str, Any]],
) -> None:
    pod = _pod(docs)
    named = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    for volume in pod["volumes"]:
        named |= {s["secret"]["name"] for s in volume.get("projected", {}).get("sources", [])}
    assert named == {AGENCY, f"accord-keystore-{AGENCY}", f"accord-keystore-{AGENCY}-passphrase",
                     TOKEN_SECRET, "accord-cluster-ca-cert"}  # fmt: skip
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert set(env) <= {e["name"] for e in container["env"] if "value" in e}  # none from a Secret
    secret, key, mount = secret_behind(pod, env["ACCORD_GATEWAY__TOKEN_FILE"]["value"])
    assert (secret, key, mount["readOnly"]) == (TOKEN_SECRET, "token", True)


def _settings(pod: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The settings the container's environment makes, each secret file filled as the
    platform would (the token with one the gateway takes)."""
    (container,) = pod["containers"]
    for name in [n for n in os.environ if n.startswith("ACCORD_")]:
        monkeypatch.delenv(name)
    for env in container["env"]:
        value = env["value"]
        if env["name"] in SECRET_FILE_VARS:
            secret, key, _ = secret_behind(pod, value)
            local = tmp_path / env["name"]
            filled = "t" * 43 if key == "token" else f"{secret}/{key}"
            local.write_text(filled + "\n", encoding="utf-8")
            value = str(local)
        monkeypatch.setenv(env["name"], value)
    return load_settings()


def test_the_gateway_starts_from_the_settings_it_is_given_behind_the_ingress(
    docs: dict[str, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(_pod(docs), tmp_path, monkeypatch)
    cfg = settings.gateway
    token, hosts, tls = check_gateway(cfg)  # it starts: TLS is the ingress's, declared
    assert token.get_secret_value() == "t" * 43
    assert (tls, cfg.tls_terminated_by_proxy) == (False, True)
    assert (cfg.host, cfg.port) == ("0.0.0.0", 8780)  # noqa: S104  # the pod's own
    assert cfg.forwarded_hops == 1  # each caller counts to the wrong-token limit, not the ingress
    assert {str(n) for n in cfg.trusted_proxies or ()} == {
        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"}  # fmt: skip
    assert (cfg.metrics_host, cfg.metrics_port) == ("0.0.0.0", 9469)  # noqa: S104
    for name in (f"accord-{NAME}:8780", f"accord-{NAME}.accord.svc.cluster.local", "127.0.0.1"):
        assert hosts.allows(name), name
    assert not hosts.allows("evil.example")
    assert settings.kafka.username == AGENCY
    assert settings.keys_dir == Path("/var/lib/accord/keys")
    assert settings.policies_dir is None  # it loads none


def test_the_gateways_port_is_closed_until_the_overlay_names_the_ingress_namespace(
    docs: dict[str, dict[str, Any]],
) -> None:
    """Any pod that reached it could write a records system's address in X-Forwarded-For;
    its ops port is scraped as a desk's is."""
    policy = docs[f"kubernetes/accord/network-policies/ingress-{NAME}.yaml"]["spec"]
    component = {"app.kubernetes.io/name": "accord", "app.kubernetes.io/component": NAME}
    assert policy["podSelector"] == {"matchLabels": component}
    ops, http = policy["ingress"]
    assert ops["from"] == [{"namespaceSelector": {}}]
    assert ops["ports"] == [{"protocol": "TCP", "port": 9469}]
    assert http["ports"] == [{"protocol": "TCP", "port": 8780}]
    [peer] = http["from"]
    assert peer == {"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "SET_INGRESS_NAMESPACE_IN_OVERLAY"}}}  # fmt: skip
    # No namespace can have that name (RFC 1123 labels: lower case, no "_").
    name = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
    assert not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name)
    monitors = monitoring_resources(_dep(AGENCY))
    job = monitors[f"service-monitor-{NAME}.yaml"]["spec"]["endpoints"][0]["relabelings"][0]
    assert job["replacement"] == f"accord-{NAME}"


def test_the_platform_is_told_to_make_the_token_secret() -> None:
    secrets = platform_secrets(kubernetes_files(_dep(AGENCY)))
    assert secrets[TOKEN_SECRET] == ("token",)
    assert secrets[f"accord-keystore-{AGENCY}"] == ("keystore.tar",)
    assert TOKEN_SECRET not in platform_secrets(kubernetes_files(_dep()))


def test_adding_a_gateway_adds_only_its_own_files_and_lists_them() -> None:
    before = kubernetes_files(_dep())
    after = kubernetes_files(_dep(AGENCY))
    assert {p for p in before if before[p] != after.get(p)} == {KUSTOMIZATION}
    assert set(after) - set(before) == {
        f"{BASE}/deployment.yaml", f"{BASE}/ops-service.yaml", f"{BASE}/service.yaml",
        f"kubernetes/accord/network-policies/ingress-{NAME}.yaml",
    }  # fmt: skip
    assert "ACCORD_GATEWAY__" not in "".join(before.values())


def test_a_dropped_gateways_token_and_keystore_secrets_are_named_for_deletion(
    tmp_path: Path,
) -> None:
    out = tmp_path / "k"
    first = {k.removeprefix("kubernetes/"): v for k, v in kubernetes_files(_dep(AGENCY)).items()}
    write_render(out, first)
    files = {k.removeprefix("kubernetes/"): v for k, v in kubernetes_files(_dep()).items()}
    deletes = removal_commands(out, files, "accord")
    assert f"kubectl -n accord delete deployment accord-{NAME}" in deletes
    secrets = [line.split("   #")[0] for line in deletes if " delete secret " in line]
    assert secrets == [
        f"kubectl -n accord delete secret {TOKEN_SECRET} --ignore-not-found",
        f"kubectl -n accord delete secret accord-keystore-{AGENCY} --ignore-not-found",
        f"kubectl -n accord delete secret accord-keystore-{AGENCY}-passphrase --ignore-not-found",
    ]
