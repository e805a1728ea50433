"""What each process may use, on both targets: Kubernetes' requests and limits, and the
Compose render's limits (``deploy.resources.limits``) made from the same figures, so a
process is held to the same memory and CPU however the partnership runs it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from broker.deploy import _kubernetes_desks as desks
from broker.deploy import _kubernetes_gateways as gateways
from broker.deploy._model import Process
from broker.deploy._strimzi import BROKER_RESOURCES

__all__ = ["COMPOSE_ONLY", "INIT_RESOURCES", "broker_deploy", "compose_deploy", "resources_of"]

Manifest = dict[str, Any]

# Starting points for a partnership's volumes (docs/performance.md), which the platform
# overlays; limits leave room for a burst without letting one process starve the node.
_RESOURCES = {
    "worker": {"requests": {"cpu": "500m", "memory": "512Mi"},
               "limits": {"cpu": "2", "memory": "1Gi"}},
    "indexer": {"requests": {"cpu": "100m", "memory": "256Mi"},
                "limits": {"cpu": "1", "memory": "512Mi"}},
    "console": {"requests": {"cpu": "100m", "memory": "256Mi"},
                "limits": {"cpu": "1", "memory": "512Mi"}},
}  # fmt: skip
INIT_RESOURCES = {"requests": {"cpu": "50m", "memory": "64Mi"},
                  "limits": {"cpu": "500m", "memory": "128Mi"}}  # fmt: skip

#: The Compose render's services that Kubernetes does not run (the platform's PostgreSQL and
#: Prometheus stand there), with limits of the same kind: no one of them may take the host.
COMPOSE_ONLY: dict[str, Mapping[str, str]] = {
    "provision": {"cpu": "1", "memory": "512Mi"},  # one-shot, as the worker's client
    "postgres": {"cpu": "1", "memory": "1Gi"},
    "prometheus": {"cpu": "1", "memory": "1Gi"},
    "grafana": {"cpu": "1", "memory": "512Mi"},
}


def resources_of(process: Process) -> Manifest:
    """The process's container's requests and limits on Kubernetes."""
    if process.is_gateway:
        return gateways.RESOURCES
    return desks.resources_of(process) if process.party else _RESOURCES[process.name]


def _cpus(cpu: str) -> str:
    # Kubernetes' "500m" is half a CPU; Docker's --cpus takes the fraction.
    return str(int(cpu[:-1]) / 1000) if cpu.endswith("m") else cpu


def _memory(memory: str) -> str:
    # Kubernetes' Mi and Gi are powers of 1024, as Docker's m and g.
    for suffix, docker in (("Mi", "m"), ("Gi", "g")):
        if memory.endswith(suffix):
            return memory.removesuffix(suffix) + docker
    raise ValueError(f"no Compose unit for a memory limit of {memory}")


def compose_deploy(limits: Mapping[str, str]) -> Manifest:
    """Kubernetes' ``limits`` as a Compose service's ``deploy``: a CPU limit only where
    Kubernetes sets one (a Kafka broker has none: throttling it stalls every client)."""
    out = {"cpus": _cpus(limits["cpu"])} if "cpu" in limits else {}
    out["memory"] = _memory(limits["memory"])
    return {"resources": {"limits": out}}


def broker_deploy() -> Manifest:
    """A Compose Kafka broker's ``deploy``: the Strimzi node pool's limits."""
    return compose_deploy(BROKER_RESOURCES["limits"])
