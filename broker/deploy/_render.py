"""One entry point for both targets: what ``accord deploy render`` writes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from broker.deploy._compose import (
    compose_files,
    external_bootstrap,
    internal_bootstrap,
    published_ports,
)
from broker.deploy._files import check_kept, kustomized
from broker.deploy._flag_alerts import flag_service_parties
from broker.deploy._kubernetes import kubernetes_files
from broker.deploy._model import GATEWAY_PORT, Deployment, Target
from broker.deploy._monitoring import MONITORING, monitoring_resources
from broker.deploy._names import (
    check_cluster,
    check_external_host,
    check_image,
    check_kafka_source_ranges,
    check_namespace,
)
from broker.deploy._observability import alert_rules_text, dashboard_text, prometheus_config
from broker.deploy._secrets import ensure_desk_ports, ensure_secrets, kept_ports

__all__ = ["render_files"]

_DATASOURCE = {
    "apiVersion": 1,
    "datasources": [
        {"name": "Prometheus", "uid": "prometheus", "type": "prometheus", "access": "proxy",
         "url": "http://prometheus:9090", "isDefault": True, "editable": False}
    ],
}  # fmt: skip
_DASHBOARDS = {
    "apiVersion": 1,
    "providers": [
        {"name": "accord", "folder": "Accord", "type": "file", "disableDeletion": True,
         "allowUiUpdates": False, "options": {"path": "/var/lib/grafana/dashboards"}}
    ],
}  # fmt: skip


def _yaml(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False, width=100)


def _observability_compose(dep: Deployment) -> dict[str, str]:
    targets = {f"accord-{p.name}": [f"{p.name}:{p.ops_port}"] for p in dep.processes}
    return {
        "prometheus/prometheus.yml": _yaml(prometheus_config(targets)),
        "prometheus/alerts.yml": alert_rules_text(flag_service_parties(dep)),
        "grafana/provisioning/datasources/prometheus.yml": _yaml(_DATASOURCE),
        "grafana/provisioning/dashboards/accord.yml": _yaml(_DASHBOARDS),
        "grafana/dashboards/accord.json": dashboard_text(),
    }


def _observability_kubernetes(dep: Deployment) -> dict[str, dict[str, Any]]:
    """The rules and the dashboard as ConfigMaps, for a Prometheus that reads rule files
    (mount it) and Grafana's dashboard sidecar (its ``grafana_dashboard`` label). The
    Prometheus Operator loads no ConfigMap: ``monitoring/`` has its ``PrometheusRule``."""
    labels = {"app.kubernetes.io/name": "accord", "app.kubernetes.io/part-of": "accord"}
    return {
        "accord/observability/alert-rules.yaml": {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "accord-alert-rules", "labels": labels},
            "data": {"accord-alerts.yml": alert_rules_text(flag_service_parties(dep))},
        },
        "accord/observability/dashboard.yaml": {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "accord-grafana-dashboard",
                         "labels": {**labels, "grafana_dashboard": "1"}},
            "data": {"accord.json": dashboard_text()},
        },
    }  # fmt: skip


def render_files(
    dep: Deployment,
    target: Target,
    out: Path,
    *,
    external_host: str = "localhost",
    namespace: str = "accord",
    cluster: str = "accord",
    kafka_source_ranges: Sequence[str] = (),
) -> tuple[dict[str, str], list[str]]:
    """(files relative to ``out``, secret files made). Compose's secrets are made in
    ``out/secrets`` when missing, and the desks' and gateways' host ports kept in
    ``out/desk-ports`` and ``out/gateway-ports``;
    Kubernetes' come from Strimzi and the platform's own
    Secrets (docs/deployment.md), so nothing secret is made for it.

    ``kafka_source_ranges``: Kubernetes only, and required there (``_names``).

    Every name is checked first, and what an earlier render into ``out`` recorded
    (``_files.check_kept``): a bad one is a one-line ``UsageError`` before anything is made."""
    check_external_host(external_host)
    check_image(dep.image)
    if target is Target.KUBERNETES:
        check_namespace(namespace)
        check_cluster(cluster)
    ranges = check_kafka_source_ranges(kafka_source_ranges, kubernetes=target is Target.KUBERNETES)
    check_kept(out, dep.kept())
    if target is Target.COMPOSE:
        made = ensure_secrets(
            out / "secrets", dep,
            internal_bootstrap=internal_bootstrap(dep),
            external_bootstrap=external_bootstrap(dep, external_host),
            external_host=external_host,
        )  # fmt: skip
        # A desk new to this render skips the ports gateways already hold, and the reverse.
        published = published_ports(dep)
        held = {port: f"{p}'s gateway" for p, port in kept_ports(out, "gateway").items()}
        ports = ensure_desk_ports(out, dep.desks, {**published, **held})
        desks = {port: f"{p}'s desk" for p, port in {**kept_ports(out, "desk"), **ports}.items()}
        gateways = ensure_desk_ports(out, dep.gateways, {**published, **desks},
                                     first=GATEWAY_PORT)  # fmt: skip
        files = compose_files(dep, external_host=external_host, desk_ports=ports,
                              gateway_ports=gateways)  # fmt: skip
        return {**files, **_observability_compose(dep)}, made
    files = kubernetes_files(
        dep, namespace=namespace, cluster=cluster, extra=_observability_kubernetes(dep),
        kafka_source_ranges=ranges,
    )  # fmt: skip
    rendered = {k.removeprefix("kubernetes/"): v for k, v in files.items()}
    return rendered | _monitoring(dep, namespace), []


def _monitoring(dep: Deployment, namespace: str) -> dict[str, str]:
    """``monitoring/``: the Prometheus Operator's resources and their own kustomization,
    which the render's own does not list (broker/deploy/_monitoring.py)."""
    return kustomized(MONITORING, namespace, monitoring_resources(dep))
