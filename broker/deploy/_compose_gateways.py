"""Agencies' publishing gateways on Compose (``accord deploy render --gateway PARTY``): what a
gateway's service has that the other web services do not (``_compose`` builds the rest).

It runs behind the host's TLS-terminating proxy, as the console and the desks do: plain HTTP
on the Compose network, published on the host's loopback only (docs/gateway.md, Security).
Docker hands the host's connections to the container from the Compose network's own gateway
address, which it picks itself, so the render cannot name the proxy alone: every private
range (``_proxies.PRIVATE_RANGES``) is trusted to write ``X-Forwarded-For``, to the gateway
as to the console and the desks (``_compose._web``). That trusts, with the proxy, every user of
the host who can open ``127.0.0.1:<port>`` and every container of the deployment
(docs/deployment.md, *Gateways*, says what they can do with it).
"""

from __future__ import annotations

from collections.abc import Mapping

from broker.deploy._model import GATEWAY_PORT
from broker.deploy._secrets import CONTAINER_SECRETS, desk_host_ports

__all__ = ["gateway_host_ports", "gateway_settings", "gateway_token_secret"]


def gateway_token_secret(party: str) -> str:
    """The Compose secret holding ``party``'s gateway's bearer token (``_secrets``)."""
    return f"gateway-token-{party}"


def gateway_settings(env: dict[str, str], secrets: list[str], party: str) -> None:
    """What ``party``'s gateway service is told beyond a web service's settings."""
    env["ACCORD_GATEWAY__TLS_TERMINATED_BY_PROXY"] = "true"
    env.pop("ACCORD_POLICIES", None)  # it loads no bundle, and none is mounted
    env["ACCORD_GATEWAY__TOKEN_FILE"] = f"{CONTAINER_SECRETS}/{gateway_token_secret(party)}"
    secrets.append(gateway_token_secret(party))


def gateway_host_ports(
    gateways: tuple[str, ...], kept: Mapping[str, int], taken: Mapping[int, str]
) -> dict[str, int]:
    """Each gateway's port on the host: ``kept`` (``gateway-ports``), else the first free
    from ``GATEWAY_PORT`` on, never one in ``taken`` (Kafka's, the console's, a desk's)."""
    return desk_host_ports(gateways, kept, taken, first=GATEWAY_PORT)
