"""Kubernetes labels, and what may talk to what or be evicted: the NetworkPolicies and the
PodDisruptionBudget of the render (``_kubernetes``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from broker.deploy import _kubernetes_gateways as gateways
from broker.deploy._model import Deployment, Process
from broker.deploy._strimzi import ACCORD_SELECTOR, KAFKA_TLS_PORT

Manifest = dict[str, Any]

#: The processes that reach the audit index's PostgreSQL.
AUDIT_DB_USERS = frozenset({"indexer", "console"})
_POSTGRES_PORT = 5432


def pod_labels(process: Process) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "accord",
        "app.kubernetes.io/component": process.name,
        **ACCORD_SELECTOR,
    }


def pod_selector(process: Process) -> dict[str, str]:
    return {"app.kubernetes.io/name": "accord", "app.kubernetes.io/component": process.name}


def metadata(name: str, labels: Mapping[str, str] = ACCORD_SELECTOR) -> Manifest:
    return {"name": name, "labels": dict(labels)}


def _network_policy(name: str, selector: Manifest, **rules: Any) -> Manifest:
    types = [t for t, key in (("Ingress", "ingress"), ("Egress", "egress")) if key in rules]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(name),
        "spec": {"podSelector": selector, "policyTypes": types, **rules},
    }


def network_policies(dep: Deployment, cluster: str) -> dict[str, Manifest]:
    """Nothing in or out of Accord's pods but what each needs. Ingress to the console, the
    desks and the ops ports is open to every namespace's pods: the platform narrows ``from``
    to its ingress controller's and Prometheus' namespaces (an overlay patch), which only it
    knows. A gateway's port is closed until that patch (``_kubernetes_gateways``): whoever
    reaches it can write X-Forwarded-For. A desk's or flag service's pod is one of Accord's:
    the same DNS and Kafka out."""
    accord = {"matchLabels": ACCORD_SELECTOR}
    tcp = "TCP"
    out = {
        "default-deny": _network_policy("accord-default-deny", accord, ingress=[], egress=[]),
        "egress-dns": _network_policy("accord-egress-dns", accord, egress=[
            {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": tcp, "port": 53}]},
        ]),
        "egress-kafka": _network_policy("accord-egress-kafka", accord, egress=[{
            "to": [{"podSelector": {"matchLabels": {"strimzi.io/cluster": cluster}}}],
            "ports": [{"protocol": tcp, "port": KAFKA_TLS_PORT}],
        }]),
    }  # fmt: skip
    db_users = sorted(p.name for p in dep.processes if p.name in AUDIT_DB_USERS)
    if db_users:
        # The platform's PostgreSQL may live outside the cluster: any address, one port.
        selector = {
            "matchLabels": ACCORD_SELECTOR,
            "matchExpressions": [
                {"key": "app.kubernetes.io/component", "operator": "In", "values": db_users}
            ],
        }
        out["egress-postgres"] = _network_policy("accord-egress-postgres", selector, egress=[
            {"ports": [{"protocol": tcp, "port": _POSTGRES_PORT}]},
        ])  # fmt: skip
    any_namespace: list[Manifest] = [{"namespaceSelector": {}}]
    for process in dep.processes:
        ports = [{"protocol": tcp, "port": process.ops_port}]
        if process.web_port is not None:
            ports.append({"protocol": tcp, "port": process.web_port})
        rules = [{"from": any_namespace, "ports": ports}]
        if process.is_gateway:
            rules = gateways.ingress_rules(process)
        out[f"ingress-{process.name}"] = _network_policy(
            f"accord-ingress-{process.name}", {"matchLabels": pod_selector(process)}, ingress=rules
        )
    return out


def disruption_budget() -> Manifest:
    """One budget over all of Accord's pods: a drain evicts one of them at a time.

    The indexer and console run a single replica, so ``minAvailable: 1`` per process would
    refuse every eviction and block node drains for ever; ``maxUnavailable: 1`` across them
    all lets a drain proceed while never taking both workers, or a worker and the console,
    down together. An
    unhealthy pod may always be evicted: keeping it protects nothing.
    """
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata("accord"),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": ACCORD_SELECTOR},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }
