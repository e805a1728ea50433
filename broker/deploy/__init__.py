"""Deployment files from a policy bundle: Compose, or Kubernetes with Strimzi.

``accord deploy render --target compose|kubernetes`` turns a bundle into the files a
platform team applies, so onboarding a party is a bundle change and a re-render, never
hand-edited YAML. One model (:func:`deployment`) feeds both targets; its Kafka topics,
logins and grants are the ones ``accord kafka provision`` applies (docs/deployment.md).
"""

from broker.deploy._files import MANIFEST, write_render
from broker.deploy._kubernetes import kubernetes_files
from broker.deploy._model import (
    CONSOLE_OPS_PORT,
    CONSOLE_PORT,
    DESK_OPS_PORT,
    DESK_PORT,
    FLAGS_OPS_PORT,
    GATEWAY_OPS_PORT,
    GATEWAY_PORT,
    INDEXER_OPS_PORT,
    WORKER_OPS_PORT,
    Deployment,
    Process,
    Target,
    deployment,
)
from broker.deploy._observability import (
    alert_rules_text,
    dashboard_text,
    exported_metric_names,
    prometheus_config,
    promql_metric_names,
    shipped_expressions,
)
from broker.deploy._platform_secrets import platform_secrets
from broker.deploy._removal import removal_commands
from broker.deploy._render import render_files
from broker.deploy._strimzi import acl_grants

__all__ = [
    "CONSOLE_OPS_PORT",
    "CONSOLE_PORT",
    "DESK_OPS_PORT",
    "DESK_PORT",
    "FLAGS_OPS_PORT",
    "GATEWAY_OPS_PORT",
    "GATEWAY_PORT",
    "INDEXER_OPS_PORT",
    "MANIFEST",
    "WORKER_OPS_PORT",
    "Deployment",
    "Process",
    "Target",
    "acl_grants",
    "alert_rules_text",
    "dashboard_text",
    "deployment",
    "exported_metric_names",
    "kubernetes_files",
    "platform_secrets",
    "prometheus_config",
    "promql_metric_names",
    "removal_commands",
    "render_files",
    "shipped_expressions",
    "write_render",
]
