"""``accord deploy render --target kubernetes``: manifests the API server and Strimzi accept,
Kafka access exactly as provisioning plans it, hardened pods, and onboarding as a small diff.
"""

from __future__ import annotations

import copy
import ipaddress
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from broker.config import KafkaSettings, KemSuite, KeystoreSettings, Settings
from broker.deploy import Deployment, deployment
from broker.deploy._kubernetes import BUNDLE_ANNOTATION, kubernetes_files
from broker.deploy._strimzi import ACCORD_SELECTOR, acl_grants
from broker.kafka import ClusterAccess, accord_topics
from broker.policy import Policy, load_bundle
from broker.provision import desired_access, plan_changes, publishers, recipients
from broker.topics import AUDIT, STATE, deliver
from broker.webauth import HostCheck, check_exposure
from tests.deploy_schemas import strimzi_errors
from tests.unit.deploy.pods import SECRET_FILE_VARS, secret_behind, settings_of

POLICIES = Path("policies")
K8S_VERSION = "1.35.0"
STRIMZI = "kafka.strimzi.io/v1"
KUSTOMIZATION = "kubernetes/kustomization.yaml"
# An object name (RFC 1123 subdomain): what the API server accepts in metadata.name.
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
NEW_HUB = "cog-great-bridge"
ALL_INTERFACES = "0.0.0.0"  # noqa: S104  # compared with the render, never bound here
# A co-ordinating team (a desk and a flag service) and a hub (a desk): every test below holds
# for a render with them as for one without (tests/unit/deploy/test_kubernetes_desks.py has
# what is theirs alone).
DESKS = ("sandwell-coord", "cog-tipton")
PARTNERSHIP = {"accord-worker", "accord-indexer", "accord-console"}


def _deployment(bundle: Path, desks: tuple[str, ...] = ()) -> Deployment:
    return deployment(
        load_bundle(bundle), bundle, brokers=3, partitions=3, image="accord-broker:test",
        desks=desks,
    )  # fmt: skip


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_bundle(POLICIES)


@pytest.fixture(scope="module", params=[(), DESKS], ids=["no-desk", "desks"])
def dep(request: pytest.FixtureRequest) -> Deployment:
    desks: tuple[str, ...] = request.param
    return _deployment(POLICIES, desks)


@pytest.fixture(scope="module")
def files(dep: Deployment) -> dict[str, str]:
    return kubernetes_files(dep)


@pytest.fixture(scope="module")
def docs(files: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Every manifest, parsed, by path; the kustomization left out (not an API object)."""
    out = {}
    for path, text in files.items():
        parsed = list(yaml.safe_load_all(text))
        assert len(parsed) == 1, f"{path} holds {len(parsed)} documents, not one"
        if path != KUSTOMIZATION:
            out[path] = parsed[0]
    return out


def _of_kind(docs: dict[str, dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs.values() if d["kind"] == kind}


def _containers(deploy: dict[str, Any]) -> Iterator[dict[str, Any]]:
    pod = deploy["spec"]["template"]["spec"]
    yield from pod.get("initContainers", [])
    yield from pod["containers"]


# -- schemas -----------------------------------------------------------------------------


def test_every_kubernetes_manifest_validates_strictly_against_kubernetes_1_35(
    docs: dict[str, dict[str, Any]],
) -> None:
    core = {p: d for p, d in docs.items() if d["apiVersion"] != STRIMZI}
    assert {d["kind"] for d in core.values()} == {
        "ConfigMap", "Deployment", "NetworkPolicy", "PersistentVolumeClaim",
        "PodDisruptionBudget", "Service",
    }  # fmt: skip
    for path, doc in core.items():
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{path}: {where}: {exc.message}")


def test_the_kubernetes_schemas_refuse_an_unknown_field(docs: dict[str, dict[str, Any]]) -> None:
    worker = copy.deepcopy(docs["kubernetes/accord/worker/deployment.yaml"])
    worker["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsRoot"] = False
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(worker, K8S_VERSION, strict=True)


def test_every_strimzi_resource_validates_against_its_crd_from_strimzi_0_51(
    docs: dict[str, dict[str, Any]],
) -> None:
    strimzi = {p: d for p, d in docs.items() if d["apiVersion"] == STRIMZI}
    assert {d["kind"] for d in strimzi.values()} == {
        "Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser",
    }  # fmt: skip
    problems = {p: e for p, d in strimzi.items() if (e := strimzi_errors(d))}
    assert problems == {}
    # The CRD schemas hold no rule for object names: the API server's.
    assert [p for p, d in strimzi.items() if not DNS_SUBDOMAIN.match(d["metadata"]["name"])] == []


def test_the_strimzi_schemas_refuse_unknown_fields_and_wrong_values(
    docs: dict[str, dict[str, Any]],
) -> None:
    user = copy.deepcopy(docs["kubernetes/kafka/users/worker.yaml"])
    user["spec"]["authorization"]["acls"][0]["operation"] = "Read"  # v1beta2's spelling
    assert any("operation" in e for e in strimzi_errors(user))
    user = copy.deepcopy(docs["kubernetes/kafka/users/worker.yaml"])
    user["spec"]["authorization"]["acls"][0]["resource"]["type"] = "transactional_id"
    assert strimzi_errors(user) != []
    cluster = copy.deepcopy(docs["kubernetes/kafka/kafka.yaml"])
    cluster["spec"]["kafka"]["listeners"][0]["authentication"]["type"] = "scram-sha-256"
    assert strimzi_errors(cluster) != []
    # ...while a topic's config is open (x-kubernetes-preserve-unknown-fields).
    topic = copy.deepcopy(docs[f"kubernetes/kafka/topics/{AUDIT}.yaml"])
    topic["spec"]["config"]["segment.ms"] = "3600000"
    assert strimzi_errors(topic) == []


def test_the_kustomization_lists_every_manifest_once_in_its_namespace(
    files: dict[str, str],
) -> None:
    kustomization = yaml.safe_load(files[KUSTOMIZATION])
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["namespace"] == "accord"
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed))
    assert {f"kubernetes/{r}" for r in listed} == set(files) - {KUSTOMIZATION}
    assert all(path.startswith("kubernetes/") for path in files)


def test_extra_resources_are_written_and_listed_but_never_replace_the_renders_own(
    dep: Deployment,
) -> None:
    dashboards = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dashboards"}}
    files = kubernetes_files(
        dep, namespace="partnership", extra={"ops/dashboards.yaml": dashboards}
    )
    assert yaml.safe_load(files["kubernetes/ops/dashboards.yaml"]) == dashboards
    kustomization = yaml.safe_load(files[KUSTOMIZATION])
    assert "ops/dashboards.yaml" in kustomization["resources"]
    assert kustomization["namespace"] == "partnership"
    with pytest.raises(ValueError, match="replace"):
        kubernetes_files(dep, extra={"kafka/kafka.yaml": dashboards})


# -- Kafka: the same access as `accord kafka provision` ------------------------------------


def test_each_kafka_user_allows_exactly_what_provisioning_plans_on_an_empty_cluster(
    policy: Policy, dep: Deployment, docs: dict[str, dict[str, Any]]
) -> None:
    kafka = KafkaSettings(partitions=3, replication_factor=dep.replication)
    empty = ClusterAccess(frozenset(), frozenset(), frozenset())
    plan = plan_changes(desired_access(policy, kafka), empty, rotate=frozenset())
    users = _of_kind(docs, "KafkaUser")
    assert set(users) == set(plan.add_users)
    assert {g.principal for g in plan.add_grants} <= set(users)
    for name, user in users.items():
        assert user["metadata"]["labels"] == {"strimzi.io/cluster": "accord"}
        assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
        rules = user["spec"]["authorization"]["acls"]
        planned = {g for g in plan.add_grants if g.principal == name}
        assert len(rules) == len(planned), name  # one rule per grant, none merged
        assert acl_grants(user) == planned, name


def test_a_suspended_party_keeps_its_login_and_holds_no_grant(
    policy: Policy, docs: dict[str, dict[str, Any]]
) -> None:
    suspended = [p for p, party in policy.bundle.parties.items() if party.status == "suspended"]
    assert suspended  # smethwick-fsp, in the example bundle
    for party in suspended:
        user = docs[f"kubernetes/kafka/users/{party}.yaml"]
        assert user["spec"]["authorization"] == {"type": "simple", "acls": []}


def test_every_topic_is_an_accord_topic_with_its_partitions_replicas_and_retention(
    policy: Policy, dep: Deployment, docs: dict[str, dict[str, Any]]
) -> None:
    kafka = KafkaSettings(partitions=3, replication_factor=3)
    expected = {
        t.name: (t.partitions, 3, t.config)
        for t in accord_topics(publishers(policy), recipients(policy), kafka)
    }
    teams = [p for p, party in policy.bundle.parties.items() if party.kind == "coordinating_team"]
    assert teams
    flags = {"cleanup.policy": "delete", "retention.ms": str(365 * 24 * 3600 * 1000)}
    for p in teams:
        app = f"accord.desk.{p}.flags"
        expected |= {
            app: (3, 3, flags),
            f"{app}-windows-changelog": (3, 3, {"cleanup.policy": "compact"}),
            f"{app}-bychild": (3, 3, {"retention.ms": str(7 * 24 * 3600 * 1000)}),
            f"{app}-households-changelog": (3, 3, {"cleanup.policy": "compact"}),
            f"{app}-byhousehold": (3, 3, {"retention.ms": str(7 * 24 * 3600 * 1000)}),
        }
    topics = _of_kind(docs, "KafkaTopic")
    assert {name: t["spec"]["topicName"] for name, t in topics.items()} == {n: n for n in topics}
    rendered = {
        name: (t["spec"]["partitions"], t["spec"]["replicas"], t["spec"]["config"])
        for name, t in topics.items()
    }
    assert rendered == expected
    assert topics[STATE]["spec"]["config"]["cleanup.policy"] == "compact"
    assert topics[AUDIT]["spec"]["config"] == {"retention.ms": "-1", "retention.bytes": "-1"}


def test_the_cluster_runs_kraft_with_tls_scram_and_acls_and_makes_no_topic_by_itself(
    dep: Deployment, docs: dict[str, dict[str, Any]]
) -> None:
    spec = docs["kubernetes/kafka/kafka.yaml"]["spec"]
    kafka = spec["kafka"]
    assert "version" not in kafka  # Strimzi's own default release
    listeners = {listener["name"]: listener for listener in kafka["listeners"]}
    assert set(listeners) == {"tls", "external"}
    for listener in listeners.values():
        assert listener["tls"] is True
        assert listener["authentication"] == {"type": "scram-sha-512"}
    assert (listeners["tls"]["port"], listeners["tls"]["type"]) == (9093, "internal")
    assert (listeners["external"]["port"], listeners["external"]["type"]) == (9094, "loadbalancer")
    assert listeners["tls"]["networkPolicyPeers"] == [
        {"podSelector": {"matchLabels": ACCORD_SELECTOR}}
    ]
    assert kafka["authorization"] == {"type": "simple"}
    assert kafka["config"] == {
        "auto.create.topics.enable": False,
        "default.replication.factor": 3,
        "min.insync.replicas": 2,
        "offsets.topic.replication.factor": 3,
        "transaction.state.log.replication.factor": 3,
        "transaction.state.log.min.isr": 2,
        "transaction.max.timeout.ms": 180_000,  # no 15-minute stall (docs/operations.md)
    }
    assert spec["entityOperator"] == {"topicOperator": {}, "userOperator": {}}
    pool = docs["kubernetes/kafka/node-pool.yaml"]["spec"]
    assert pool["replicas"] == dep.brokers == 3
    assert pool["roles"] == ["controller", "broker"]


def test_the_external_listener_admits_only_the_given_ranges_and_no_one_without_them(
    dep: Deployment, docs: dict[str, dict[str, Any]]
) -> None:
    """A load balancer with no source ranges is on the internet on most clouds. Without the
    parties' ranges the listener names a placeholder that is no CIDR: the API server refuses
    the Service Strimzi makes of it, rather than expose Kafka."""

    def external(docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
        listeners = docs["kubernetes/kafka/kafka.yaml"]["spec"]["kafka"]["listeners"]
        (found,) = [ls for ls in listeners if ls["name"] == "external"]
        return dict(found["configuration"])

    [unset] = external(docs)["loadBalancerSourceRanges"]
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        ipaddress.ip_network(unset)
    given = kubernetes_files(dep, kafka_source_ranges=["192.0.2.0/24", "2001:db8::/32"])
    parsed = {p: yaml.safe_load(t) for p, t in given.items() if p != KUSTOMIZATION}
    assert external(parsed) == {"loadBalancerSourceRanges": ["192.0.2.0/24", "2001:db8::/32"]}
    assert strimzi_errors(parsed["kubernetes/kafka/kafka.yaml"]) == []


# -- Accord's processes ------------------------------------------------------------------


def test_every_pod_runs_unprivileged_read_only_and_without_a_service_account_token(
    dep: Deployment, docs: dict[str, dict[str, Any]]
) -> None:
    deployments = _of_kind(docs, "Deployment")
    assert set(deployments) == {f"accord-{p.name}" for p in dep.processes}
    assert set(deployments) >= PARTNERSHIP
    for name, deploy in deployments.items():
        pod = deploy["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"] == {
            "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        }, name  # fmt: skip
        for container in _containers(deploy):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, (name, container["name"])
            assert context["readOnlyRootFilesystem"] is True, (name, container["name"])
            assert context["capabilities"] == {"drop": ["ALL"]}, (name, container["name"])
            assert {"requests", "limits"} <= set(container["resources"]), container["name"]
        # Every pod is one NetworkPolicy and Strimzi's listener peers select.
        labels = deploy["spec"]["template"]["metadata"]["labels"]
        assert ACCORD_SELECTOR.items() <= labels.items(), name


def test_every_process_is_probed_for_liveness_and_readiness_on_its_ops_port(
    dep: Deployment, docs: dict[str, dict[str, Any]]
) -> None:
    for process in dep.processes:
        deploy = docs[f"kubernetes/accord/{process.name}/deployment.yaml"]
        (container,) = deploy["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["ops"] == process.ops_port
        assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "ops"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ops"}
        service = docs[f"kubernetes/accord/{process.name}/ops-service.yaml"]
        assert service["spec"]["ports"] == [{"name": "ops", "port": process.ops_port,
                                              "targetPort": "ops"}]  # fmt: skip
        assert service["metadata"]["annotations"]["prometheus.io/port"] == str(process.ops_port)
        assert (
            service["spec"]["selector"].items()
            <= deploy["spec"]["template"]["metadata"]["labels"].items()
        )


def test_two_workers_share_the_inputs_and_are_replaced_all_together_never_side_by_side(
    docs: dict[str, dict[str, Any]],
) -> None:
    """An older worker beside a newer one overwrites the state entries it cannot read
    (docs/operations.md, "Upgrading workers in a group"): Recreate stops every old pod first."""
    worker = docs["kubernetes/accord/worker/deployment.yaml"]["spec"]
    assert worker["replicas"] == 2
    assert worker["strategy"] == {"type": "Recreate"}
    console = docs["kubernetes/accord/console/deployment.yaml"]["spec"]
    assert (console["replicas"], console["strategy"]) == (1, {"type": "Recreate"})


def test_no_web_port_is_reachable_until_an_overlay_names_the_ingress_namespace(
    dep: Deployment, docs: dict[str, dict[str, Any]]
) -> None:
    """The console's and each desk's pages (a desk's hold personal data) believe
    X-Forwarded-For from any private address: any pod that reached them could choose the
    address the sign-in throttle counts. Only the ops ports (Prometheus) are open."""
    closed = {"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "SET_INGRESS_NAMESPACE_IN_OVERLAY"}}}  # fmt: skip
    web = [p for p in dep.processes if p.web_port is not None]
    assert {p.name for p in web} >= {"console", *(f"desk-{d}" for d in dep.desks)}
    for process in dep.processes:
        rules = docs[f"kubernetes/accord/network-policies/ingress-{process.name}.yaml"]["spec"][
            "ingress"]  # fmt: skip
        ops = {"protocol": "TCP", "port": process.ops_port}
        assert rules[0] == {"from": [{"namespaceSelector": {}}], "ports": [ops]}, process.name
        if process.web_port is None:
            assert len(rules) == 1, process.name
            continue
        http = {"protocol": "TCP", "port": process.web_port}
        assert rules[1:] == [{"from": [closed], "ports": [http]}], process.name
    # No namespace can have that name (RFC 1123 labels: lower case, no "_").
    assert not DNS_SUBDOMAIN.match("SET_INGRESS_NAMESPACE_IN_OVERLAY")


def test_the_documented_overlay_patch_opens_the_consoles_web_port_to_the_named_namespace(
    docs: dict[str, dict[str, Any]],
) -> None:
    """docs/deployment.md, Kubernetes step 6: the JSON patch's path is the web port's peer."""
    text = Path("docs/deployment.md").read_text(encoding="utf-8")
    block = text[text.index("name: accord-ingress-console}") :]
    path = re.search(r"path: (\S+)", block)
    assert path is not None
    policy = copy.deepcopy(docs["kubernetes/accord/network-policies/ingress-console.yaml"])
    *parents, last = [p.replace("~1", "/") for p in path.group(1).strip("/").split("/")]
    node: Any = policy
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    assert node[last] == "SET_INGRESS_NAMESPACE_IN_OVERLAY"
    node[last] = "ingress-nginx"
    web = policy["spec"]["ingress"][1]
    assert web["ports"] == [{"protocol": "TCP", "port": 8765}]
    assert web["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    ]


def test_no_disruption_budget_can_block_a_node_drain(docs: dict[str, dict[str, Any]]) -> None:
    for budget in _of_kind(docs, "PodDisruptionBudget").values():
        assert "minAvailable" not in budget["spec"]
        assert budget["spec"]["maxUnavailable"] >= 1


def test_each_process_reads_its_own_settings_from_the_environment_it_is_given(
    dep: Deployment,
    docs: dict[str, dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Names are checked by what broker/config.py makes of them: a misspelt variable would be
    # ignored, and its setting left at its default. Every secret is a file on a read-only
    # volume (settings_of fills each with "<Secret>/<key>"), never an environment variable.
    for process in dep.processes:
        deploy = docs[f"kubernetes/accord/{process.name}/deployment.yaml"]
        pod = deploy["spec"]["template"]["spec"]
        home = tmp_path / process.name
        home.mkdir()
        settings, secrets = settings_of(pod, home, monkeypatch)
        ops = getattr(settings, process.settings_section.lower())
        assert (ops.metrics_host, ops.metrics_port) == (ALL_INTERFACES, process.ops_port)
        assert settings.kafka.bootstrap == "accord-kafka-bootstrap:9093"
        assert settings.kafka.username == process.principal
        assert settings.kafka.ca_file == Path("/etc/accord/kafka-ca/ca.crt")
        assert (settings.kafka.partitions, settings.kafka.replication_factor) == (3, 3)
        assert settings.keys_dir == Path("/var/lib/accord/keys")
        assert settings.kafka.password is not None
        assert settings.kafka.password.get_secret_value() == f"{process.principal}/password"
        passphrase = settings.keystore_passphrase()
        assert passphrase is not None
        # Its own Secret, apart from the keystore's: RBAC can tell the two apart.
        keystore = f"accord-keystore-{process.principal}"
        assert passphrase.get_secret_value() == f"{keystore}-passphrase/passphrase"
        expected = {
            "ACCORD_KAFKA__PASSWORD_FILE": (process.principal, "password"),
            "ACCORD_KEYSTORE__PASSPHRASE_FILE": (f"{keystore}-passphrase", "passphrase"),
        }
        if process.name in {"indexer", "console"}:
            assert settings.audit.db is not None
            assert settings.audit.db.get_secret_value() == "accord-audit-db/url"
            expected["ACCORD_AUDIT__DB_FILE"] = ("accord-audit-db", "url")
        assert secrets == expected
        if process.name == "console":
            assert settings.console.host == ALL_INTERFACES
            assert settings.console.secure_cookies is True
            # on every address of the pod, plain HTTP: it starts, TLS being the ingress's
            assert check_exposure(settings.console, app="console") is False
            assert settings.console_users_file == Path("/var/lib/accord/console/users.json")
            # behind the ingress: each officer's own address counts, not the controller's
            assert settings.console.forwarded_hops == 1
            # ...but only from the pod network: a guesser elsewhere names no address
            proxies = settings.console.trusted_proxies or ()
            assert any(ipaddress.ip_address("10.42.0.17") in n for n in proxies)
            assert not any(ipaddress.ip_address("203.0.113.9") in n for n in proxies)
            # never "*": the cluster's own names and loopback (port-forward) only, until an
            # overlay adds the Ingress host (a DNS-rebinding page's name gets 400)
            check = HostCheck.of(settings.console, setting="-")
            for name in ("accord-console:8765", "accord-console.accord.svc.cluster.local",
                         "localhost:8765", "127.0.0.1"):  # fmt: skip
                assert check.allows(name), name
            for name in ("accord.example.org", "evil.example", "accord-console.other.svc"):
                assert not check.allows(name), name
        if process.party is not None:
            assert settings.policies == Path("/etc/accord/policies")
        if process.web_port is not None and process.party is not None:
            assert (settings.desk.host, settings.desk.port) == (ALL_INTERFACES, process.web_port)
            assert settings.desk.secure_cookies is True
            # on every address of the pod, plain HTTP: it starts, TLS being the ingress's
            assert check_exposure(settings.desk, app="desk") is False
            assert settings.desk.forwarded_hops == 1
            proxies = settings.desk.trusted_proxies or ()
            assert any(ipaddress.ip_address("10.42.0.17") in n for n in proxies)
            assert not any(ipaddress.ip_address("203.0.113.9") in n for n in proxies)
            desk_check = HostCheck.of(settings.desk, setting="-")  # it starts
            assert desk_check.allows(f"accord-{process.name}.accord.svc:8766")
            assert not desk_check.allows("evil.example")


def test_the_keystore_is_unpacked_into_memory_and_never_lands_on_disk(
    dep: Deployment, docs: dict[str, dict[str, Any]]
) -> None:
    for process in dep.processes:
        pod = docs[f"kubernetes/accord/{process.name}/deployment.yaml"]["spec"]["template"]
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert volumes["keys"]["emptyDir"]["medium"] == "Memory"
        archive = volumes["keystore-archive"]["secret"]
        assert archive["secretName"] == f"accord-keystore-{process.principal}"
        (unpack,) = pod["spec"]["initContainers"]
        assert unpack["image"] == dep.image
        assert unpack["command"][:3] == ["python", "-m", "tarfile"]
        assert unpack["command"][-2:] == ["/etc/accord/keystore/keystore.tar",
                                          "/var/lib/accord/keys"]  # fmt: skip
        # The archive is the init container's alone; Accord sees the unpacked keys.
        (main,) = pod["spec"]["containers"]
        assert "keystore-archive" not in {m["name"] for m in main["volumeMounts"]}
        assert {"name": "keys", "mountPath": "/var/lib/accord/keys"} in main["volumeMounts"]


def test_the_init_containers_command_unpacks_a_keystore_that_accord_then_opens(
    tmp_path: Path, docs: dict[str, dict[str, Any]]
) -> None:
    # Made as `accord keys init` makes one (0700 folder, 0600 files), archived as the
    # module docstring says, unpacked by the very command the pod runs into a folder as
    # open as an emptyDir: the keystore's own modes must survive, or Accord refuses it.
    from pydantic import SecretStr

    from broker.keys import FileKeyStore

    passphrase = SecretStr("synthetic-test-passphrase")
    made = tmp_path / "made"
    FileKeyStore(made / "worker", passphrase, create=True, scrypt_n=2**10).ensure_party(
        "worker", kem=KemSuite.X25519
    )
    archive = tmp_path / "keystore.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(made / "worker", arcname="worker")
    keys = tmp_path / "pod-keys"
    keys.mkdir()
    keys.chmod(0o777)
    pod = docs["kubernetes/accord/worker/deployment.yaml"]["spec"]["template"]["spec"]
    (unpack,) = pod["initContainers"]
    here = {"python": sys.executable, "/etc/accord/keystore/keystore.tar": str(archive),
            "/var/lib/accord/keys": str(keys)}  # fmt: skip
    subprocess.run([here.get(arg, arg) for arg in unpack["command"]], check=True)
    settings = Settings(home=tmp_path, keystore=KeystoreSettings(path=keys, passphrase=passphrase))
    opened = FileKeyStore(settings.keystore_path("worker"), passphrase)
    assert opened.current_signing_key("worker").info.party == "worker"


def test_the_bundle_is_mounted_file_for_file_where_the_worker_and_console_load_it(
    dep: Deployment, docs: dict[str, dict[str, Any]]
) -> None:
    configmap = docs["kubernetes/accord/policies.yaml"]
    for process in dep.processes:
        pod = docs[f"kubernetes/accord/{process.name}/deployment.yaml"]["spec"]["template"]
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        (main,) = pod["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in main["env"]}
        if "--policies" in process.args:
            path = process.args[process.args.index("--policies") + 1]
        else:  # a desk, a flag service: `accord desk` loads the bundle its settings name
            path = env.get("ACCORD_POLICIES")
            # ...and must load the partnership's, not the example the package carries.
            assert (path is not None) == (process.party is not None), process.name
        if path is None:
            assert "policies" not in volumes
            assert BUNDLE_ANNOTATION not in pod["metadata"].get("annotations", {})
            continue
        assert pod["metadata"]["annotations"][BUNDLE_ANNOTATION] == dep.bundle_version
        items = volumes["policies"]["configMap"]["items"]
        mounted = {item["path"]: configmap["data"][item["key"]] for item in items}
        assert mounted == dict(dep.policy_files)
        mount = next(m for m in main["volumeMounts"] if m["name"] == "policies")
        assert mount["mountPath"] == path


# -- onboarding ----------------------------------------------------------------------------


def test_onboarding_a_hub_changes_only_its_own_files_the_list_and_the_bundle(
    tmp_path: Path, files: dict[str, str], dep: Deployment
) -> None:
    bundle = tmp_path / "policies"
    shutil.copytree(POLICIES, bundle)
    with (bundle / "parties.yaml").open("a", encoding="utf-8") as fh:
        fh.write(f"  {NEW_HUB}:\n    name: Great Bridge Community Operating Group\n"
                 "    kind: hub\n    localities: [\"DY4 7\"]\n")  # fmt: skip
    onboarded = _deployment(bundle, dep.desks)
    after = kubernetes_files(onboarded)

    added = set(after) - set(files)
    removed = set(files) - set(after)
    changed = {p for p in set(files) & set(after) if files[p] != after[p]}
    assert added == {
        f"kubernetes/kafka/users/{NEW_HUB}.yaml",
        f"kubernetes/kafka/topics/{deliver(NEW_HUB)}.yaml",
    }
    assert removed == set()
    # Every process that loads the bundle rolls to the new one: the desks too.
    rolled = {f"kubernetes/accord/{name}/deployment.yaml"
              for name in ("worker", "console", *(p.name for p in dep.desk_processes))}  # fmt: skip
    assert changed == {
        KUSTOMIZATION,
        "kubernetes/accord/policies.yaml",  # the bundle itself
        *rolled,
    }
    # The Deployments differ by the bundle version they carry, nothing else.
    for path in rolled:
        assert after[path].replace(onboarded.bundle_version, dep.bundle_version) == files[path]
    user = yaml.safe_load(after[f"kubernetes/kafka/users/{NEW_HUB}.yaml"])
    assert {(g.kind, g.name, g.operation) for g in acl_grants(user)} == {
        ("topic", deliver(NEW_HUB), "read"),
        ("group", f"{NEW_HUB}.", "read"),
        ("topic", "accord.access", "write"),
        # Its desk web app's transactional ids (docs/operations.md); a hub runs no flag
        # service, so holds nothing else of accord.desk.<party>.* and no DescribeConfigs.
        ("transactional_id", f"accord.desk.{NEW_HUB}.", "write"),
    }
    # A co-ordinating team's flag service reads its topics' retention: DescribeConfigs, spelt
    # as Strimzi spells it in the file.
    assert "DescribeConfigs" in after["kubernetes/kafka/users/sandwell-coord.yaml"]
    assert "DescribeConfigs" not in after[f"kubernetes/kafka/users/{NEW_HUB}.yaml"]


def test_each_worker_pod_is_its_own_instance_and_the_two_spread_over_nodes(
    docs: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both replicas ran as the default --instance worker-1: one client id, one log name."""
    from typer.testing import CliRunner

    from broker.cli import build_app

    pod = docs["kubernetes/accord/worker/deployment.yaml"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    # Kubernetes expands $(POD_NAME) in args from a variable defined in the container.
    assert container["args"][-2:] == ["--instance", "$(POD_NAME)"]
    # ...into an option the worker takes (its help names it).
    result = CliRunner().invoke(build_app(), [*container["args"][:-2], "--help"])
    assert "--instance" in result.output
    (spread,) = pod["topologySpreadConstraints"]
    assert spread == {
        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "accord",
                                          "app.kubernetes.io/component": "worker"}},
    }  # fmt: skip
    for name in ("indexer", "console"):
        other = docs[f"kubernetes/accord/{name}/deployment.yaml"]["spec"]["template"]["spec"]
        assert "--instance" not in other["containers"][0]["args"]


def test_every_secret_is_a_read_only_file_the_pod_alone_reads_and_none_is_in_the_environment(
    dep: Deployment, docs: dict[str, dict[str, Any]]
) -> None:
    for process in dep.processes:
        deploy = docs[f"kubernetes/accord/{process.name}/deployment.yaml"]
        spec = deploy["spec"]["template"]["spec"]
        for container in _containers(deploy):
            assert all("valueFrom" not in e or e["name"] == "POD_NAME"
                       for e in container.get("env", [])), container["name"]  # fmt: skip
            assert "envFrom" not in container
        (main,) = spec["containers"]
        files = {e["name"]: e["value"] for e in main["env"] if e["name"] in SECRET_FILE_VARS}
        assert files
        for var, path in files.items():
            _, _, mount = secret_behind(spec, path)
            assert mount["readOnly"] is True, (process.name, var)
            volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
            # root's and the pod's fsGroup's to read, no one else's
            assert volume["projected"]["defaultMode"] == 0o440, process.name
        # The init container unpacks the keystore and reads no passphrase.
        (unpack,) = spec["initContainers"]
        assert "secrets" not in {m["name"] for m in unpack["volumeMounts"]}
