"""The HTTP publishing gateway: an agency's records system that cannot run Python publishes
contact events and consent records over HTTP, as plain JSON.

The agency runs it inside its own network, in front of the SDK's ``Publisher`` and with its
own keystore: the agency's private signing key never leaves the agency. Each request is
validated as the SDK validates, sealed to the broker and sent; the answer comes once Kafka has
confirmed it. See ``docs/gateway.md``.

    accord gateway --as wmp        # ACCORD_GATEWAY__TOKEN_FILE names the bearer token's file
"""

from broker.gateway._app import GatewayDeps, Publishing, create_gateway_app
from broker.gateway._consent import ConsentGate
from broker.gateway._limit import AuthLimit
from broker.gateway._metrics import GatewayMetrics
from broker.gateway._serve import GatewayRun, check_gateway, run_gateway

__all__ = [
    "AuthLimit",
    "ConsentGate",
    "GatewayDeps",
    "GatewayMetrics",
    "GatewayRun",
    "Publishing",
    "check_gateway",
    "create_gateway_app",
    "run_gateway",
]
