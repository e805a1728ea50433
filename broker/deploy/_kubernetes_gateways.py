"""Agencies' publishing gateways on Kubernetes (``accord deploy render --gateway PARTY``):
what a gateway's pod has that the partnership's own pods do not.

A gateway runs as its agency, as a desk runs as its recipient: its Kafka login is the Secret
Strimzi makes for the party's ``KafkaUser``, its keystore the platform's Secret
``accord-keystore-<party>`` (the agency's own, with its private signing key: the SDK's,
docs/gateway.md), and its bearer token the platform's Secret ``accord-gateway-token-<party>``
(key ``token``), mounted read-only as a file like every other secret. It loads no bundle
and keeps nothing (its home is an ``emptyDir``), so it rolls like any stateless app.

It is served behind the cluster's TLS ingress, as the console and the desks are: plain HTTP
inside the pod network (``TLS_TERMINATED_BY_PROXY``), the ingress controller counted as one
proxy (``FORWARDED_HOPS=1``, from any private address: ``TRUSTED_PROXIES``) so that its
wrong-token limit counts each caller, not the controller. Since any pod could otherwise
reach the port and write any address in ``X-Forwarded-For``, its NetworkPolicy opens the
port to one namespace only, the ingress controller's, as the console's and the desks'
(``_kubernetes_policies.web_ingress_rules``): until an overlay names it, nothing reaches it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from broker.deploy._model import Process
from broker.deploy._proxies import PRIVATE_RANGES

__all__ = ["RESOURCES", "gateway_env", "token_file", "token_secret"]

Manifest = dict[str, Any]

# A small web app's, as a desk's: it validates and seals one request's records at a time per
# connection, and holds nothing.
RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"},
             "limits": {"cpu": "1", "memory": "512Mi"}}  # fmt: skip
_ALL_INTERFACES = "0.0.0.0"  # noqa: S104  # inside the pod's own network namespace


def token_secret(party: str) -> str:
    """The platform's Secret holding ``party``'s gateway's bearer token (key ``token``)."""
    return f"accord-gateway-token-{party}"


def token_file(process: Process) -> tuple[str, str, str, str]:
    """(variable, Secret, key, file name) of the gateway's token."""
    assert process.party is not None  # noqa: S101  # a gateway always runs as its party
    return ("ACCORD_GATEWAY__TOKEN_FILE", token_secret(process.party), "token", "gateway-token")


def gateway_env(process: Process, names: Iterable[str]) -> list[Manifest]:
    """Its settings: listening for the ingress, and the names (``names``: its Service's in
    the cluster, never "*") it answers to; an overlay adds the Ingress host."""
    return [
        {"name": "ACCORD_GATEWAY__HOST", "value": _ALL_INTERFACES},
        {"name": "ACCORD_GATEWAY__PORT", "value": str(process.web_port)},
        {"name": "ACCORD_GATEWAY__TLS_TERMINATED_BY_PROXY", "value": "true"},
        {"name": "ACCORD_GATEWAY__FORWARDED_HOPS", "value": "1"},
        {"name": "ACCORD_GATEWAY__TRUSTED_PROXIES", "value": PRIVATE_RANGES},
        {"name": "ACCORD_GATEWAY__ALLOWED_HOSTS", "value": ",".join(names)},
    ]
