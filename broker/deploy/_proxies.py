"""Which addresses a render trusts to write ``X-Forwarded-For`` for the web services it makes
(the console, the desks, the gateways), on Compose and on Kubernetes alike.

Neither render can name the proxy alone: Docker hands the host's connections to a container
from an address of the Compose network that it picks itself, and an ingress controller's pod
address changes at each restart. So every private range is trusted, and what else reaches the
port from one is believed too (docs/deployment.md says who, and how to narrow it).
"""

from __future__ import annotations

__all__ = ["PRIVATE_RANGES"]

#: RFC 1918, RFC 6598 (carrier-grade NAT, some pod networks') and IPv6 unique local: where
#: Docker's networks and most pod networks are numbered, never a caller on the internet. Not
#: an IPv6 pod network of public addresses (EKS, GKE): there the controller is not trusted
#: until an overlay names its range (the web apps warn once when that happens).
PRIVATE_RANGES = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,fc00::/7"
