"""Kubernetes labels, and what may talk to what or be evicted: the NetworkPolicies and the
PodDisruptionBudget of the render (``_kubernetes``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from broker.deploy._model import Deployment, Process
from broker.deploy._strimzi import ACCORD_SELECTOR, KAFKA_TLS_PORT

Manifest = dict[str, Any]

#: What a web port's NetworkPolicy names until an overlay puts the ingress controller's
#: namespace in its place: upper case and "_", so no namespace can ever be called it.
INGRESS_NAMESPACE_UNSET = "SET_INGRESS_NAMESPACE_IN_OVERLAY"
_NAMESPACE_NAME = "kubernetes.io/metadata.name"  # set by the API server: no one can forge it

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


def web_ingress_rules(process: Process) -> list[Manifest]:
    """Who may reach a pod: its ops port from any namespace (Prometheus'; the platform may
    narrow it), and its web port (the console's, a desk's, a gateway's) from the ingress
    controller's namespace alone, none until an overlay names it. Whoever reaches a web port
    can write X-Forwarded-For, which the app believes from any private address (``_proxies``),
    and so choose the address the sign-in throttle counts; a desk's pages show personal data."""
    tcp = "TCP"
    rules: list[Manifest] = [
        {
            "from": [{"namespaceSelector": {}}],
            "ports": [{"protocol": tcp, "port": process.ops_port}],
        }
    ]
    if process.web_port is not None:
        ingress = {"namespaceSelector": {"matchLabels": {_NAMESPACE_NAME: INGRESS_NAMESPACE_UNSET}}}
        rules.append({"from": [ingress], "ports": [{"protocol": tcp, "port": process.web_port}]})
    return rules


def network_policies(dep: Deployment, cluster: str) -> dict[str, Manifest]:
    """Nothing in or out of Accord's pods but what each needs. The ops ports are open to
    every namespace's pods (Prometheus'); the web ports to none until an overlay names the
    ingress controller's namespace (:func:`web_ingress_rules`). A desk's, flag service's or
    gateway's pod is one of Accord's: the same DNS and Kafka out."""
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
    for process in dep.processes:
        out[f"ingress-{process.name}"] = _network_policy(
            f"accord-ingress-{process.name}",
            {"matchLabels": pod_selector(process)},
            ingress=web_ingress_rules(process),
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
