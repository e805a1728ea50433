"""One entry point for both targets: what ``accord deploy render`` writes."""

from __future__ import annotations

from pathlib import Path

from broker.deploy._compose import compose_files, external_bootstrap, internal_bootstrap
from broker.deploy._kubernetes import kubernetes_files
from broker.deploy._model import Deployment, Target
from broker.deploy._secrets import ensure_secrets

__all__ = ["render_files"]


def render_files(
    dep: Deployment,
    target: Target,
    out: Path,
    *,
    external_host: str = "localhost",
    namespace: str = "accord",
    cluster: str = "accord",
) -> tuple[dict[str, str], list[str]]:
    """(files relative to ``out``, secret files made). Compose's secrets are made in
    ``out/secrets`` when missing; Kubernetes' come from Strimzi and the platform's own
    Secrets (docs/deployment.md), so nothing secret is made for it."""
    if target is Target.COMPOSE:
        made = ensure_secrets(
            out / "secrets", dep,
            internal_bootstrap=internal_bootstrap(dep),
            external_bootstrap=external_bootstrap(dep, external_host),
            external_host=external_host,
        )  # fmt: skip
        return compose_files(dep, external_host=external_host), made
    files = kubernetes_files(dep, namespace=namespace, cluster=cluster)
    return {k.removeprefix("kubernetes/"): v for k, v in files.items()}, []
