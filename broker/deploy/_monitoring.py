"""Prometheus Operator's resources for the Kubernetes render: optional, in ``monitoring/``.

The shipped rules and dashboard select Accord's processes by the scrape job names Compose's
``prometheus.yml`` gives them (``accord-worker``, ``accord-indexer``, ``accord-console``,
``accord-desk-<party>``, ``accord-flags-<party>``). On Kubernetes a job is named by whatever
discovers the target, so each ``ServiceMonitor`` here sets ``job`` to that same name, and a
``PrometheusRule`` carries the same groups as ``alerts.yml``: the Operator loads rules from
``PrometheusRule`` objects only, never from a ConfigMap.

They are custom resources, which an API server without the Operator's CRDs refuses, so they
are not in the render's own kustomization: ``monitoring/kustomization.yaml`` lists them, for
``kubectl apply -k monitoring/`` where the Operator runs.
"""

from __future__ import annotations

from typing import Any

import yaml

from broker.deploy._flag_alerts import flag_service_parties
from broker.deploy._kubernetes_policies import metadata, pod_selector
from broker.deploy._model import Deployment, Process
from broker.deploy._observability import SCRAPE_INTERVAL, alert_rules_text

__all__ = ["MONITORING", "job_name", "monitoring_resources"]

Manifest = dict[str, Any]

MONITORING = "monitoring"
_API = "monitoring.coreos.com/v1"


def job_name(process: Process) -> str:
    """The scrape job the rules and the dashboard know the process by (Compose's too)."""
    return f"accord-{process.name}"


def service_monitor(process: Process) -> Manifest:
    """Scrape the process's ops Service (``_kubernetes.ops_service``), every pod behind it,
    with ``job`` set to :func:`job_name` (the Operator's default would be the Service's
    name, ``accord-worker-ops``, which no rule selects)."""
    return {
        "apiVersion": _API,
        "kind": "ServiceMonitor",
        "metadata": metadata(job_name(process)),
        "spec": {
            # The ops Service alone: the console's and a desk's page Services share its labels.
            "selector": {"matchLabels": {**pod_selector(process), "accord-ops": "true"}},
            "endpoints": [{
                "port": "ops",
                "path": "/metrics",
                "interval": SCRAPE_INTERVAL,
                "relabelings": [
                    {"action": "replace", "targetLabel": "job",
                     "replacement": job_name(process)},
                ],
            }],
        },
    }  # fmt: skip


def prometheus_rule(dep: Deployment) -> Manifest:
    """``alerts.yml``'s groups, the flag services' of ``dep`` with them, as the Operator
    loads them."""
    groups = yaml.safe_load(alert_rules_text(flag_service_parties(dep)))["groups"]
    return {
        "apiVersion": _API,
        "kind": "PrometheusRule",
        "metadata": metadata("accord-alerts"),
        "spec": {"groups": groups},
    }


def monitoring_resources(dep: Deployment) -> dict[str, Manifest]:
    """File name (relative to ``monitoring/``) to manifest: a ``ServiceMonitor`` per process
    and the ``PrometheusRule``."""
    out = {f"service-monitor-{p.name}.yaml": service_monitor(p) for p in dep.processes}
    out["prometheus-rule.yaml"] = prometheus_rule(dep)
    return out
