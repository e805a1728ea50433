"""``accord deploy render --target kubernetes --desk PARTY``: each recipient's desk (and a
co-ordinating team's flag service) runs as its party, with only its party's Secrets, one pod
at a time, its data on a volume that outlives the pod; a render without desks is untouched,
and one more desk is a diff of its own files.

What holds for every process (schemas, hardening, probes, settings read back through
broker/config.py, the bundle) is checked over a render with desks in test_kubernetes.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from broker.config import KemSuite
from broker.deploy import DESK_OPS_PORT, DESK_PORT, FLAGS_OPS_PORT, Deployment, deployment
from broker.deploy._kubernetes import kubernetes_files
from broker.errors import UsageError
from broker.policy import load_bundle
from broker.sdk import default_replay_file
from tests.unit.deploy.pods import settings_of

POLICIES = Path("policies")
KUSTOMIZATION = "kubernetes/kustomization.yaml"
TEAM, HUB = "sandwell-coord", "cog-tipton"
CONSOLE_INGRESS = "kubernetes/accord/network-policies/ingress-console.yaml"


def _dep(*desks: str, bundle: Path = POLICIES) -> Deployment:
    return deployment(load_bundle(bundle), bundle, brokers=3, partitions=3,
                      image="accord-broker:test", desks=desks)  # fmt: skip


def _parsed(files: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {path: yaml.safe_load(text) for path, text in files.items()}


@pytest.fixture(scope="module")
def dep() -> Deployment:
    return _dep(TEAM, HUB)


@pytest.fixture(scope="module")
def files(dep: Deployment) -> dict[str, str]:
    return kubernetes_files(dep)


@pytest.fixture(scope="module")
def docs(files: dict[str, str]) -> dict[str, dict[str, Any]]:
    return _parsed(files)


def _pod(docs: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    spec: dict[str, Any] = docs[f"kubernetes/accord/{name}/deployment.yaml"]["spec"]
    return spec["template"]["spec"]


def _secrets_named(pod: dict[str, Any]) -> set[str]:
    """Every Secret the pod can read: volumes and environment, of every container."""
    named = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    for volume in pod["volumes"]:
        sources = volume.get("projected", {}).get("sources", [])
        named |= {source["secret"]["name"] for source in sources if "secret" in source}
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        for env in container.get("env", []):
            if "secretKeyRef" in env.get("valueFrom", {}):
                named.add(env["valueFrom"]["secretKeyRef"]["name"])
        for source in container.get("envFrom", []):
            named.add(source["secretRef"]["name"])
    return named


def _settings_of(pod: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    return settings_of(pod, tmp_path, monkeypatch)[0]


def _volume_at(pod: dict[str, Any], path: Path) -> dict[str, Any]:
    """The volume ``path`` lands on in the container: its deepest mount above it."""
    (container,) = pod["containers"]
    mounts = [m for m in container["volumeMounts"] if path.is_relative_to(m["mountPath"])]
    assert mounts, f"{path} is on the container's read-only root"
    deepest = max(mounts, key=lambda m: len(m["mountPath"]))
    volumes = {v["name"]: v for v in pod["volumes"]}
    return volumes[deepest["name"]]


def test_each_named_recipient_gets_a_desk_and_a_team_its_flag_service(
    dep: Deployment, docs: dict[str, dict[str, Any]]
) -> None:
    for name in (f"desk-{TEAM}", f"flags-{TEAM}", f"desk-{HUB}"):
        assert docs[f"kubernetes/accord/{name}/deployment.yaml"]["kind"] == "Deployment"
    assert f"kubernetes/accord/flags-{HUB}/deployment.yaml" not in docs  # a hub raises none
    (container,) = _pod(docs, f"flags-{TEAM}")["containers"]
    assert container["args"] == ["desk", "flags", "--as", TEAM]
    (container,) = _pod(docs, f"desk-{HUB}")["containers"]
    assert container["args"] == ["desk", "--as", HUB]


def test_a_desk_pod_reads_only_its_own_partys_secrets(
    dep: Deployment, docs: dict[str, dict[str, Any]]
) -> None:
    for process in dep.desk_processes:
        party = process.party
        pod = _pod(docs, process.name)
        # Its login (Strimzi's Secret for its KafkaUser), its keystore, the cluster CA.
        assert _secrets_named(pod) == {
            party, f"accord-keystore-{party}", f"accord-keystore-{party}-passphrase",
            "accord-cluster-ca-cert",
        }  # fmt: skip
        text = yaml.safe_dump(pod)
        for other in (*dep.parties, "worker", "console", "indexer"):
            if other != party:
                assert f"accord-keystore-{other}\n" not in text, (process.name, other)
        (container,) = pod["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert env["ACCORD_KAFKA__USERNAME"]["value"] == party
        assert "ACCORD_AUDIT__DB_FILE" not in env


def test_one_pod_of_a_desk_at_a_time_replaced_not_rolled(
    dep: Deployment, docs: dict[str, dict[str, Any]]
) -> None:
    for process in dep.desk_processes:
        spec = docs[f"kubernetes/accord/{process.name}/deployment.yaml"]["spec"]
        assert (spec["replicas"], spec["strategy"]) == (1, {"type": "Recreate"}), process.name


def test_what_a_desk_and_a_flag_service_keep_is_on_a_volume_of_their_own(
    dep: Deployment,
    docs: dict[str, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    claims = {}
    for process in dep.desk_processes:
        pod = _pod(docs, process.name)
        (tmp_path / process.name).mkdir()
        settings = _settings_of(pod, monkeypatch, tmp_path / process.name)
        party = process.party
        assert party is not None
        if process.web_port is None:  # the flag service's data folder (withdrawn-keep.json)
            kept = [settings.home / "desk" / party / "flags"]
        else:  # accounts, store, the subscriber's replay memory
            kept = [
                settings.desk_users_file(party),
                settings.home / "desk" / f"{party}.db",
                default_replay_file(f"{party}.desk", settings.home),
            ]
        for path in kept:
            volume = _volume_at(pod, path)
            assert "emptyDir" not in volume, (process.name, path)
            claims[process.name] = volume["persistentVolumeClaim"]["claimName"]
        # ...while its private keys stay in memory, above the volume.
        assert _volume_at(pod, settings.keys_dir / party)["emptyDir"]["medium"] == "Memory"
        claim = docs[f"kubernetes/accord/{process.name}/data.yaml"]
        assert claim["kind"] == "PersistentVolumeClaim"
        assert claim["metadata"]["name"] == claims[process.name]
        assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    # No two processes share one: a desk's store and a flag service's folder have one writer.
    assert len(set(claims.values())) == len(claims) == len(dep.desk_processes)


def test_desk_and_flag_service_are_probed_and_scraped_on_their_own_ops_ports(
    docs: dict[str, dict[str, Any]],
) -> None:
    for name, ops in ((f"desk-{TEAM}", DESK_OPS_PORT), (f"flags-{TEAM}", FLAGS_OPS_PORT)):
        (container,) = _pod(docs, name)["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["ops"] == ops
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["ACCORD_DESK__METRICS_PORT"] == str(ops)
        for probe, path in (("startupProbe", "/livez"), ("livenessProbe", "/livez"),
                            ("readinessProbe", "/readyz")):  # fmt: skip
            assert container[probe]["httpGet"] == {"path": path, "port": "ops"}, (name, probe)
        service = docs[f"kubernetes/accord/{name}/ops-service.yaml"]
        assert service["spec"]["ports"] == [{"name": "ops", "port": ops, "targetPort": "ops"}]
        assert service["metadata"]["labels"]["accord-ops"] == "true"
    (container,) = _pod(docs, f"flags-{TEAM}")["containers"]
    assert [p["name"] for p in container["ports"]] == ["ops"]  # no pages
    assert f"kubernetes/accord/flags-{TEAM}/service.yaml" not in docs
    web = docs[f"kubernetes/accord/desk-{TEAM}/service.yaml"]
    assert web["metadata"]["name"] == f"accord-desk-{TEAM}"
    assert web["spec"]["ports"] == [{"name": "http", "port": DESK_PORT, "targetPort": "http"}]


def test_a_desk_is_reached_as_the_console_is_and_reaches_only_kafka_and_dns(
    dep: Deployment, docs: dict[str, dict[str, Any]]
) -> None:
    console = docs[CONSOLE_INGRESS]["spec"]["ingress"]
    policies = {
        p["metadata"]["name"]: p for path, p in docs.items() if "/network-policies/" in path
    }
    for process in dep.desk_processes:
        ingress = policies[f"accord-ingress-{process.name}"]["spec"]
        component = {
            "app.kubernetes.io/name": "accord",
            "app.kubernetes.io/component": process.name,
        }
        assert ingress["podSelector"] == {"matchLabels": component}
        rules = ingress["ingress"]
        # Whom the platform lets reach the console's ports, its ops port and its pages.
        assert [r["from"] for r in rules] == [r["from"] for r in console][: len(rules)]
        ports = [[p["port"] for p in r["ports"]] for r in rules]
        assert ports == [[process.ops_port]] + ([[process.web_port]] if process.web_port else [])
        labels = docs[f"kubernetes/accord/{process.name}/deployment.yaml"]["spec"]["template"][
            "metadata"]["labels"]  # fmt: skip
        selecting = {
            name for name, p in policies.items()
            if p["spec"]["podSelector"].get("matchLabels", {}).items() <= labels.items()
            and all(labels.get(e["key"]) in e["values"]
                    for e in p["spec"]["podSelector"].get("matchExpressions", []))
        }  # fmt: skip
        assert selecting == {
            "accord-default-deny", "accord-egress-dns", "accord-egress-kafka",
            f"accord-ingress-{process.name}",
        }, process.name  # fmt: skip


def test_a_desk_pod_rolls_with_the_bundle_it_loads(
    dep: Deployment, docs: dict[str, dict[str, Any]]
) -> None:
    for process in dep.desk_processes:
        template = docs[f"kubernetes/accord/{process.name}/deployment.yaml"]["spec"]["template"]
        assert template["metadata"]["annotations"] == {"accord/bundle-version": dep.bundle_version}


def test_a_render_without_desks_has_none_of_their_files_and_the_same_files_as_before() -> None:
    plain = kubernetes_files(_dep())
    with_desks = kubernetes_files(_dep(TEAM, HUB))
    assert not [
        p
        for p in plain
        if p.startswith(("kubernetes/accord/desk-", "kubernetes/accord/flags-"))
        or "ingress-desk-" in p
        or "ingress-flags-" in p
    ]
    assert "ACCORD_DESK__" not in "".join(plain.values())
    assert "ACCORD_POLICIES" not in "".join(plain.values())
    # Desks add files and list them; they change none of the partnership's own.
    assert set(plain) < set(with_desks)
    assert [p for p in plain if plain[p] != with_desks[p]] == [KUSTOMIZATION]
    listed = yaml.safe_load(plain[KUSTOMIZATION])["resources"]
    assert [r for r in yaml.safe_load(with_desks[KUSTOMIZATION])["resources"] if r in listed] == (
        listed
    )


def test_onboarding_one_more_desk_adds_only_its_own_files_and_lists_them() -> None:
    before = kubernetes_files(_dep(HUB))
    after = kubernetes_files(_dep(HUB, TEAM))
    assert set(before) - set(after) == set()
    assert {p for p in before if before[p] != after[p]} == {KUSTOMIZATION}
    assert set(after) - set(before) == {
        *(f"kubernetes/accord/desk-{TEAM}/{f}.yaml"
          for f in ("deployment", "ops-service", "service", "data")),
        *(f"kubernetes/accord/flags-{TEAM}/{f}.yaml"
          for f in ("deployment", "ops-service", "data")),
        f"kubernetes/accord/network-policies/ingress-desk-{TEAM}.yaml",
        f"kubernetes/accord/network-policies/ingress-flags-{TEAM}.yaml",
    }  # fmt: skip
    listed = yaml.safe_load(after[KUSTOMIZATION])["resources"]
    assert {f"kubernetes/{r}" for r in listed} == set(after) - {KUSTOMIZATION}


def test_a_party_whose_desk_kubernetes_could_not_name_is_refused_in_one_line(
    tmp_path: Path,
) -> None:
    long_id = "cog-" + "x" * 44  # a hub's longest: accord-desk-<id>-ops, 64 characters
    bundle = tmp_path / "policies"
    shutil.copytree(POLICIES, bundle)
    with (bundle / "parties.yaml").open("a", encoding="utf-8") as fh:
        fh.write(f"  {long_id}:\n    name: A Long-Named Hub\n    kind: hub\n")
    kubernetes_files(_dep(bundle=bundle))  # its login and topic alone are fine
    with pytest.raises(UsageError, match=rf"^--desk {long_id}: 'accord-desk-{long_id}-ops' "):
        kubernetes_files(_dep(long_id, bundle=bundle))


def test_a_partys_keystore_archived_as_documented_is_the_one_its_desk_opens(
    tmp_path: Path, docs: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # docs/deployment.md: `tar -C keys -cf PARTY.tar PARTY`, unpacked by the pod's own init
    # container; the desk must then find the party's keystore (keys/PARTY) and its key.
    from broker.keys import FileKeyStore

    passphrase = SecretStr("synthetic-test-passphrase")
    keys = tmp_path / "keys"
    FileKeyStore(keys / TEAM, passphrase, create=True, scrypt_n=2**10).ensure_party(
        TEAM, kem=KemSuite.X25519
    )
    archive = tmp_path / "keystore.tar"
    subprocess.run(["tar", "-C", str(keys), "-cf", str(archive), TEAM], check=True)
    with tarfile.open(archive) as tar:
        assert tar.getnames()[0] == TEAM
    pod = _pod(docs, f"flags-{TEAM}")
    unpacked = tmp_path / "pod-keys"
    unpacked.mkdir()
    (unpack,) = pod["initContainers"]
    here = {"python": sys.executable, "/etc/accord/keystore/keystore.tar": str(archive),
            "/var/lib/accord/keys": str(unpacked)}  # fmt: skip
    subprocess.run([here.get(arg, arg) for arg in unpack["command"]], check=True)
    settings = _settings_of(pod, monkeypatch, tmp_path)
    assert settings.keys_dir == Path("/var/lib/accord/keys")
    settings = settings.model_copy(
        update={"keystore": settings.keystore.model_copy(update={"path": unpacked})}
    )
    assert settings.keystore_path(TEAM) == unpacked / TEAM
    opened = FileKeyStore(settings.keystore_path(TEAM), passphrase)
    assert TEAM in opened.private_parties()
