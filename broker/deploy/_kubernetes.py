"""The Kubernetes target: Strimzi for Kafka, Deployments for Accord's processes, kustomize to
apply them (``kubectl apply -k kubernetes/``).

Kustomize rather than Helm: the render is plain YAML, one resource per file, that a
platform team reads, reviews in a merge request and overlays with its own patches (sizes,
storage classes, the ingress, narrower network peers); there is no templating language to
learn or audit, and ``kubectl`` applies it with no other tool. Onboarding a party changes
exactly its own files (its ``KafkaUser``, its delivery or ingress topic) plus the
kustomization's list and the policy bundle, so the diff shows what the bundle change does.

The render holds no secret. The platform provides, in the namespace:

- ``accord-keystore-<principal>`` for the worker, the console, the indexer and each desk's
  and gateway's party (_kubernetes_desks.py, _kubernetes_gateways.py): key
  ``keystore.tar`` (the keystore folder, archived with the folder at its top:
  ``tar -C <keys> -cf keystore.tar worker``). The indexer's is an
  ``indexer/`` keystore of public keys only (``accord keys import --trust`` into an empty
  folder makes one): it checks the chains' checkpoints against the signed key directory;
- ``accord-keystore-<principal>-passphrase``, key ``passphrase``: its passphrase, in a Secret
  of its own, so that RBAC can give the keystore and its passphrase to different people and
  a copy of one Secret is never both;
- ``accord-audit-db``, key ``url``: the audit index's PostgreSQL URL (indexer, console);
- ``accord-gateway-token-<party>``, key ``token``: each gateway's bearer token
  (_kubernetes_gateways.py).

Strimzi makes the rest: a Secret per ``KafkaUser`` (key ``password``) and the cluster CA
certificate (``<cluster>-cluster-ca-cert``, key ``ca.crt``).

Every secret reaches Accord as a file, never an environment variable (which ``kubectl
describe``, crash reports and child processes see): one read-only projected volume at
``/run/secrets/accord`` holds the pod's own, named by ``ACCORD_<SECTION>__<NAME>_FILE``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from broker.deploy import _kubernetes_desks as desks
from broker.deploy import _kubernetes_gateways as gateways
from broker.deploy._files import kustomized
from broker.deploy._kubernetes_policies import (
    AUDIT_DB_USERS,
    disruption_budget,
    metadata,
    network_policies,
    pod_labels,
    pod_selector,
)
from broker.deploy._model import Deployment, Process
from broker.deploy._platform_secrets import keystore_secrets
from broker.deploy._proxies import PRIVATE_RANGES
from broker.deploy._resources import INIT_RESOURCES, resources_of
from broker.deploy._strimzi import (
    KAFKA_TLS_PORT,
    kafka,
    kafka_topic,
    kafka_user,
    node_pool,
)
from broker.errors import UsageError

__all__ = ["BUNDLE_ANNOTATION", "POLICIES_CONFIGMAP", "kubernetes_files"]

Manifest = dict[str, Any]

ROOT = "kubernetes"
POLICIES_CONFIGMAP = "accord-policies"
#: On the pod template of every process that loads the bundle: a new bundle rolls its pods.
BUNDLE_ANNOTATION = "accord/bundle-version"

_HOME = "/var/lib/accord"
_KEYS = f"{_HOME}/keys"
_CONSOLE_DATA = f"{_HOME}/console"
_POLICIES = "/etc/accord/policies"
_KAFKA_CA = "/etc/accord/kafka-ca"
_KEYSTORE_ARCHIVE = "/etc/accord/keystore"
_SECRETS = "/run/secrets/accord"
# Owned by root, group the pod's fsGroup: the process reads its secrets as that group, and
# no other user of the node's containers can.
_SECRET_MODE = 0o440
_UID = 10001
# Inside the pod's own network namespace; the NetworkPolicies decide who reaches the port.
_ALL_INTERFACES = "0.0.0.0"  # noqa: S104  # the ops server must answer the kubelet and Prometheus
_AUDIT_DB_SECRET = "accord-audit-db"  # noqa: S105  # a Secret's name, not its value
_CONSOLE_PVC = "accord-console"
#: Processes that keep the audit index in PostgreSQL.
# Object limits the API server enforces: a ConfigMap's data is at most 1 MiB, its keys
# letters, digits, '-', '_' and '.'.
_CONFIGMAP_MAX_BYTES = 1024 * 1024
_CONFIGMAP_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")


def _configmap_key(rel: str) -> str:
    # ConfigMap keys cannot hold '/': the volume's items put each file back at its path.
    return rel.replace("/", "__")


def policies_configmap(dep: Deployment) -> Manifest:
    """The bundle the worker and the console load, as it was when rendered."""
    data = {_configmap_key(rel): text for rel, text in dep.policy_files}
    if len(data) != len(dep.policy_files):
        raise UsageError("two policy files flatten to one ConfigMap key: rename one")
    bad = sorted(k for k in data if not _CONFIGMAP_KEY.match(k))
    if bad:
        raise UsageError(f"policy file names a ConfigMap cannot hold: {', '.join(bad)}")
    size = sum(len(k) + len(v.encode("utf-8")) for k, v in data.items())
    if size > _CONFIGMAP_MAX_BYTES:
        raise UsageError(f"the policy bundle is {size} bytes; a ConfigMap holds at most 1 MiB")
    meta = metadata(POLICIES_CONFIGMAP)
    meta["annotations"] = {BUNDLE_ANNOTATION: dep.bundle_version}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def _secret_files(process: Process) -> list[tuple[str, str, str, str]]:
    """(variable, Secret, key, file name) for each secret setting the process reads."""
    files = [
        # The User Operator's Secret for the KafkaUser of the same name.
        ("ACCORD_KAFKA__PASSWORD_FILE", process.principal, "password", "kafka-password"),
        ("ACCORD_KEYSTORE__PASSPHRASE_FILE", passphrase_secret(process), "passphrase",
         "keystore-passphrase"),
    ]  # fmt: skip
    if process.name in AUDIT_DB_USERS:
        files.append(("ACCORD_AUDIT__DB_FILE", _AUDIT_DB_SECRET, "url", "audit-db-url"))
    if process.is_gateway:
        files.append(gateways.token_file(process))
    return files


def _secrets_volume(process: Process) -> Manifest:
    sources = [
        {"secret": {"name": secret, "items": [{"key": key, "path": path}]}}
        for _, secret, key, path in _secret_files(process)
    ]
    return {"name": "secrets", "projected": {"sources": sources, "defaultMode": _SECRET_MODE}}


def _env(dep: Deployment, process: Process, cluster: str, namespace: str) -> list[Manifest]:
    section = process.settings_section  # the process's own settings (broker/config)
    env: list[Manifest] = [
        {"name": "ACCORD_HOME", "value": _HOME},
        {"name": "ACCORD_KAFKA__BOOTSTRAP", "value": f"{cluster}-kafka-bootstrap:{KAFKA_TLS_PORT}"},
        {"name": "ACCORD_KAFKA__USERNAME", "value": process.principal},
        {"name": "ACCORD_KAFKA__CA_FILE", "value": f"{_KAFKA_CA}/ca.crt"},
        {"name": "ACCORD_KAFKA__PARTITIONS", "value": str(dep.partitions)},
        {"name": "ACCORD_KAFKA__REPLICATION_FACTOR", "value": str(dep.replication)},
        {"name": f"ACCORD_{section}__METRICS_HOST", "value": _ALL_INTERFACES},
        {"name": f"ACCORD_{section}__METRICS_PORT", "value": str(process.ops_port)},
        {"name": "ACCORD_KEYSTORE__PATH", "value": _KEYS},
        *({"name": var, "value": f"{_SECRETS}/{path}"}
          for var, _, _, path in _secret_files(process)),
    ]  # fmt: skip
    if process.is_gateway:
        env += gateways.gateway_env(process, service_names(process, namespace))
    elif process.web_port is not None:  # the console, a desk
        web = f"ACCORD_{section}__"
        env += [
            {"name": f"{web}HOST", "value": _ALL_INTERFACES},
            {"name": f"{web}PORT", "value": str(process.web_port)},
            # Served behind the cluster's TLS ingress: the browser sees HTTPS, the pod HTTP
            # (without the flag, an app on every address refuses to start: no TLS of its own).
            {"name": f"{web}SECURE_COOKIES", "value": "true"},
            {"name": f"{web}TLS_TERMINATED_BY_PROXY", "value": "true"},
            # Reached through the ingress controller, which appends the user's address to
            # X-Forwarded-For: that entry is the client, or every user is the controller's
            # one address to the sign-in throttle. An overlay sets 2 behind a load balancer
            # that appends too. The controller's pod address is not known to the render:
            # believed from any private address (the pod network's), as for a gateway.
            {"name": f"{web}FORWARDED_HOPS", "value": "1"},
            {"name": f"{web}TRUSTED_PROXIES", "value": PRIVATE_RANGES},
            # The names the cluster knows it by, never "*": the render cannot know the
            # Ingress's name, and a DNS-rebinding page needs only an app that answers any.
            # Loopback names are always answered (kubectl port-forward); an overlay adds the
            # Ingress host, which until then gets 400 and a log line naming this variable.
            {"name": f"{web}ALLOWED_HOSTS", "value": ",".join(service_names(process, namespace))},
        ]
    if _console_data(process):
        env.append({"name": "ACCORD_CONSOLE__USERS_FILE", "value": f"{_CONSOLE_DATA}/users.json"})
    if process.party is not None and not process.is_gateway:
        # A desk's command names no bundle: without this it would load the package's example.
        env.append({"name": "ACCORD_POLICIES", "value": _POLICIES})
    return env


def service_names(process: Process, namespace: str) -> tuple[str, ...]:
    """The host names a web process's Service has inside the cluster, in ``namespace``."""
    name = f"accord-{process.name}"
    qualified = f"{name}.{namespace}"
    return (name, qualified, f"{qualified}.svc", f"{qualified}.svc.cluster.local")


def _keystore_secret(process: Process) -> str:
    return keystore_secrets(process.principal)[0]


def passphrase_secret(process: Process) -> str:
    """The Secret of the process's keystore passphrase, apart from the keystore's own."""
    return keystore_secrets(process.principal)[1]


def _loads_bundle(process: Process) -> bool:
    if process.is_gateway:  # it validates as the SDK does, whatever the bundle
        return False
    return "--policies" in process.args or process.party is not None


def _keeps_home(process: Process) -> bool:
    # A desk's and a flag service's home outlives the pod; a gateway keeps nothing.
    return process.party is not None and not process.is_gateway


def _console_data(process: Process) -> bool:
    # A desk keeps its accounts in its own home, a volume of its own (_kubernetes_desks.py).
    return process.web_port is not None and process.party is None


def _security() -> Manifest:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _probe(path: str, *, period: int, failures: int) -> Manifest:
    return {
        "httpGet": {"path": path, "port": "ops"},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


def _volumes(dep: Deployment, process: Process, cluster: str) -> list[Manifest]:
    home: Manifest = {"emptyDir": {"sizeLimit": "256Mi"}}
    if _keeps_home(process):
        home = {"persistentVolumeClaim": {"claimName": desks.home_claim_name(process)}}
    volumes: list[Manifest] = [
        {"name": "home", **home},
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        # Private keys live in memory only, never on the node's disk.
        {"name": "keys", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
        {"name": "keystore-archive", "secret": {
            "secretName": _keystore_secret(process),
            "items": [{"key": "keystore.tar", "path": "keystore.tar"}],
            "defaultMode": 0o440,
        }},
        {"name": "kafka-ca", "secret": {
            "secretName": f"{cluster}-cluster-ca-cert",
            "items": [{"key": "ca.crt", "path": "ca.crt"}],
            "defaultMode": 0o444,
        }},
        _secrets_volume(process),
    ]  # fmt: skip
    if _loads_bundle(process):
        items = [{"key": _configmap_key(rel), "path": rel} for rel, _ in dep.policy_files]
        volumes.append(
            {"name": "policies", "configMap": {"name": POLICIES_CONFIGMAP, "items": items}}
        )
    if _console_data(process):
        volumes.append(
            {"name": "console-data", "persistentVolumeClaim": {"claimName": _CONSOLE_PVC}}
        )
    return volumes


def _mounts(process: Process) -> list[Manifest]:
    mounts: list[Manifest] = [
        {"name": "home", "mountPath": _HOME},
        {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108  # the pod's own emptyDir
        {"name": "keys", "mountPath": _KEYS},
        {"name": "kafka-ca", "mountPath": _KAFKA_CA, "readOnly": True},
        {"name": "secrets", "mountPath": _SECRETS, "readOnly": True},
    ]
    if _loads_bundle(process):
        mounts.append({"name": "policies", "mountPath": _POLICIES, "readOnly": True})
    if _console_data(process):
        mounts.append({"name": "console-data", "mountPath": _CONSOLE_DATA})
    return mounts


def _unpack_keystore(dep: Deployment) -> Manifest:
    # A Secret holds flat keys, a keystore is a folder tree with 0700/0600 modes: the archive
    # travels in the Secret and is unpacked into memory before Accord starts. The "tar"
    # filter refuses absolute paths and anything landing outside the folder, and keeps the
    # folder's own 0700, which the stricter "data" filter drops (the keystore then refuses
    # to open: tests/unit/deploy/test_kubernetes.py).
    return {
        "name": "unpack-keystore",
        "image": dep.image,
        "command": ["python", "-m", "tarfile", "--filter", "tar",
                    "-e", f"{_KEYSTORE_ARCHIVE}/keystore.tar", _KEYS],
        "resources": INIT_RESOURCES,
        "securityContext": _security(),
        "volumeMounts": [
            {"name": "keystore-archive", "mountPath": _KEYSTORE_ARCHIVE, "readOnly": True},
            {"name": "keys", "mountPath": _KEYS},
        ],
    }  # fmt: skip


#: Worker pods (more spread the load up to the input partitions; see docs/performance.md).
WORKER_REPLICAS = 2


def deployment_manifest(
    dep: Deployment, process: Process, cluster: str, namespace: str = "accord"
) -> Manifest:
    """One process (two workers, else a single replica), hardened, probed on its ops port."""
    ports = [{"name": "ops", "containerPort": process.ops_port}]
    if process.web_port is not None:
        ports.append({"name": "http", "containerPort": process.web_port})
    args, env = list(process.args), _env(dep, process, cluster, namespace)
    if process.name == "worker":
        # Each pod its own name in the group: its Kafka client id and its log lines. It names
        # nothing Kafka fences by: the transactional ids are the input partitions' own
        # (broker.pipeline._tasks), whichever pod holds them, and the chains are per partition.
        env.insert(
            0, {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
        )
        args += ["--instance", "$(POD_NAME)"]
    container = {
        "name": process.name,
        "image": dep.image,
        "args": args,
        "ports": ports,
        "env": env,
        # Started: the ops server answers (a restore may take long and is still live).
        "startupProbe": _probe("/livez", period=5, failures=60),
        "livenessProbe": _probe("/livez", period=10, failures=3),
        "readinessProbe": _probe("/readyz", period=5, failures=2),
        "resources": resources_of(process),
        "securityContext": _security(),
        "volumeMounts": _mounts(process),
    }
    template_meta: Manifest = {"labels": pod_labels(process)}
    if _loads_bundle(process):
        template_meta["annotations"] = {BUNDLE_ANNOTATION: dep.bundle_version}
    spec: Manifest = {
        # Workers share the inputs as a consumer group (docs/operations.md): two keep the
        # pipeline going while one restarts or is drained off a node.
        "replicas": WORKER_REPLICAS if process.name == "worker" else 1,
        "selector": {"matchLabels": pod_selector(process)},
    }
    if process.name == "worker":
        # All old workers stop before any new one starts, never side by side: an older
        # worker overwrites a newer one's state entries it cannot read, and the consent
        # shares in them are lost (docs/operations.md, "Upgrading workers in a group"). A
        # new bundle rolls them the same way; the pause is a restart's.
        spec["strategy"] = {"type": "Recreate"}
    elif _keeps_home(process) or _console_data(process):
        # The console, a desk, a flag service: a ReadWriteOnce volume attaches to one node at
        # a time, so a rolling update would wait on it for ever; and a desk's store or a flag
        # service's folder must never have two pods writing it.
        spec["strategy"] = {"type": "Recreate"}
    spec["template"] = {
        "metadata": template_meta,
        "spec": {
            "automountServiceAccountToken": False,
            # No Service's address in the environment: it is ACCORD_*-prefixed for Services
            # named accord-*, and only broker/config's settings belong there.
            "enableServiceLinks": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": _UID,
                "runAsGroup": _UID,
                "fsGroup": _UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "initContainers": [_unpack_keystore(dep)],
            "containers": [container],
            "volumes": _volumes(dep, process, cluster),
        },
    }
    if process.name == "worker":
        # On different nodes where the cluster can: one node's loss then stops one worker,
        # not both. Preferred, not required, so a small cluster still runs them.
        spec["template"]["spec"]["topologySpreadConstraints"] = [{
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": pod_selector(process)},
        }]  # fmt: skip
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(f"accord-{process.name}", pod_labels(process)),
        "spec": spec,
    }


def _service(process: Process, name: str, port: int, port_name: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(name, pod_labels(process)),
        "spec": {
            "selector": pod_selector(process),
            "ports": [{"name": port_name, "port": port, "targetPort": port_name}],
        },
    }


def ops_service(process: Process) -> Manifest:
    """The process's ops port, for Prometheus: annotations for annotation-based discovery,
    the ``accord-ops`` label and the ``ops`` port name for a ServiceMonitor."""
    svc = _service(process, f"accord-{process.name}-ops", process.ops_port, "ops")
    svc["metadata"]["labels"]["accord-ops"] = "true"
    svc["metadata"]["annotations"] = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(process.ops_port),
        "prometheus.io/path": "/metrics",
    }
    return svc


def console_claim() -> Manifest:
    """The console's accounts file, which outlives its pod. Its keys (the second factors',
    the device cookies') are in the keystore's Secret, made before it by ``keys init``: an
    older console's ``device-cookie.key`` left on this volume is only read until then."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata(_CONSOLE_PVC),
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }


def _resources(
    dep: Deployment, cluster: str, namespace: str, source_ranges: Sequence[str]
) -> dict[str, Manifest]:
    out: dict[str, Manifest] = {
        "kafka/kafka.yaml": kafka(dep, cluster, source_ranges),
        "kafka/node-pool.yaml": node_pool(dep, cluster),
    }
    out |= {f"kafka/topics/{t.name}.yaml": kafka_topic(dep, t, cluster) for t in dep.topics}
    out |= {f"kafka/users/{u}.yaml": kafka_user(dep, u, cluster) for u in dep.users}
    if any(_loads_bundle(p) for p in dep.processes):
        out["accord/policies.yaml"] = policies_configmap(dep)
    desks.check_names(dep.desk_processes)
    desks.check_names(dep.gateway_processes, option="--gateway")
    for process in dep.processes:
        base = f"accord/{process.name}"
        out[f"{base}/deployment.yaml"] = deployment_manifest(dep, process, cluster, namespace)
        out[f"{base}/ops-service.yaml"] = ops_service(process)
        if process.web_port is not None:
            out[f"{base}/service.yaml"] = _service(
                process, f"accord-{process.name}", process.web_port, "http"
            )
        if _keeps_home(process):
            out[f"{base}/data.yaml"] = desks.home_claim(process, pod_labels(process))
        elif _console_data(process):
            out[f"{base}/data.yaml"] = console_claim()
    out["accord/disruption-budget.yaml"] = disruption_budget()
    out |= {
        f"accord/network-policies/{name}.yaml": doc
        for name, doc in network_policies(dep, cluster).items()
    }
    return out


def kubernetes_files(
    dep: Deployment,
    *,
    namespace: str = "accord",
    cluster: str = "accord",
    extra: Mapping[str, Mapping[str, Any]] | None = None,
    kafka_source_ranges: Sequence[str] = (),
) -> dict[str, str]:
    """Every file of the render: relative path (under ``kubernetes/``) to YAML text, one
    resource per file, and ``kubernetes/kustomization.yaml`` listing them.

    ``extra`` adds resources made elsewhere (the dashboards' and alert rules' ConfigMaps):
    file name relative to ``kubernetes/``, to manifest. ``kafka_source_ranges``: the CIDRs
    Kafka's external listener admits (none: it admits no one, ``_strimzi.kafka``).
    """
    resources = _resources(dep, cluster, namespace, kafka_source_ranges)
    for rel, doc in (extra or {}).items():
        if rel in resources or rel == "kustomization.yaml":
            raise ValueError(f"extra resource {rel} would replace one of the render's own")
        resources[rel] = dict(doc)
    return kustomized(ROOT, namespace, resources)
