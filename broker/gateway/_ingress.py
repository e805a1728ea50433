"""Whether Kafka lets the gateway's login write its party's ingress topic.

A gateway run with another party's Kafka login (or one provisioning never granted) would say
it is ready and then have Kafka refuse every event. So, at start, Kafka is asked without
producing (a metadata request for the topic: Kafka grants Describe with Write), and the
gateway does not start when it says no. A write refused later (a grant taken away while the
gateway runs) is the gateway's misconfiguration, not the caller's: answered 503 (nothing was
written: the caller keeps the event and sends it again), logged as an error naming the topic,
and ``/readyz`` says not ready until a write succeeds or Kafka, asked again once a
``recheck``, lets the login see the topic (else a load balancer that stopped sending would
keep it unready for good).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from broker.errors import ConfigError
from broker.ops import OK, Check

__all__ = ["IngressWrite", "check_ingress"]

log = structlog.get_logger("accord.gateway")

Probe = Callable[[], Awaitable[bool | None]]


async def check_ingress(probe: Probe, party: str, topic: str) -> None:
    """``ConfigError`` naming ``party`` and ``topic`` when Kafka says this login may not see
    ``topic`` (so not write it). "Cannot tell" starts the gateway: Kafka's ACLs decide then."""
    if await probe() is False:
        raise ConfigError(
            f"Kafka does not let this gateway's login write {topic}: the gateway of {party} "
            f"needs {party}'s own Kafka login (its client file, or ACCORD_KAFKA__USERNAME and "
            "ACCORD_KAFKA__PASSWORD), granted by `accord kafka provision`"
        )


class IngressWrite:
    """Whether the last write to the party's ingress topic was refused by Kafka's ACLs."""

    def __init__(self) -> None:
        self._refused = False

    def refused(self, topic: str) -> None:
        """Kafka's ACLs refused a write to ``topic``: an error, once each time it starts."""
        if not self._refused:
            # The topic and why: never anything of the event (it was not written).
            log.error("gateway_write_refused", topic=topic,
                      why="Kafka refuses this gateway's login the write: not the party's "
                      "login, or its grant was taken away")  # fmt: skip
        self._refused = True

    def written(self) -> None:
        self._refused = False

    def check(self) -> Check:
        if self._refused:
            return Check(ok=False, reason="kafka refused the gateway's write")
        return OK

    async def watch(self, probe: Probe, recheck: float) -> None:
        """While refused, ask Kafka once a ``recheck`` whether the login may see the topic
        again (a grant given back): yes, and the gateway says ready; the next write tells."""
        while True:
            await asyncio.sleep(recheck)
            if self._refused and await probe() is True:
                self._refused = False
