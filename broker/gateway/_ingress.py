"""Whether Kafka lets the gateway's login write its party's ingress topic.

A gateway run with another party's Kafka login (or one provisioning never granted) would say
it is ready and then have Kafka refuse every event. Kafka has no dry-run produce, so two
checks stand in for one at start, neither producing anything. The login's name first:
``accord kafka provision`` names each party's login after the party and grants Write on
``accord.ingress.<party>`` to that login alone, so another name (the worker's, say, which
reads every ingress topic) is refused before Kafka is reached. Then Kafka is asked whether the
login may see the topic (a metadata request: Kafka grants Describe with Write, but with Read
too, so a yes does not prove Write; a no proves its absence), and the gateway does not start
when it says no.

A write refused later (a grant taken away while the gateway runs) is the gateway's
misconfiguration, not the caller's: answered 503 (nothing was written: the caller keeps the
event and sends it again), logged as an error naming the topic, and ``/readyz`` says not
ready until a write succeeds. Else a load balancer that stopped sending on "not ready" would
keep it unready for good, so Kafka is asked again whether the login may see the topic, at
once and then once a ``recheck``: a no then a yes is the grant given back, and the gateway
says ready. A yes never seen to be a no says little of Write (the login could see the topic
when its write was refused: a Read grant), yet a refusal with Describe allowed throughout is
also what a grant never broken shows for a while (ACLs still reaching every Kafka broker,
provisioning that takes grants away before adding them back): so a yes says ready too, but
only once a back-off has passed since the last refused write. It starts at ``FIRST_BACKOFF``
and doubles with each refusal after (up to ``MAX_BACKOFF``), so a login that truly may not
write has one write refused per back-off rather than readiness flapping once a ``recheck``;
a write that succeeds starts it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import structlog

from broker.errors import ConfigError
from broker.ops import OK, Check

__all__ = ["FIRST_BACKOFF", "MAX_BACKOFF", "IngressWrite", "check_ingress", "check_login"]

log = structlog.get_logger("accord.gateway")

Probe = Callable[[], Awaitable[bool | None]]

#: Seconds after a refused write before Kafka's yes to Describe alone says ready again; each
#: refusal after doubles it, to at most MAX_BACKOFF, until a write succeeds.
FIRST_BACKOFF = 60.0
MAX_BACKOFF = 30 * 60.0


def check_login(login: str | None, party: str, topic: str) -> None:
    """``ConfigError`` naming both when the Kafka login is not ``party``'s own: provisioning
    names a party's login after it, and grants no other login Write on ``topic``. ``None``
    (no login, or PLAINTEXT's nobody) is left to the Kafka clients and ``check_ingress``."""
    if login is not None and login != party:
        raise ConfigError(
            f"the gateway of {party} logs in to Kafka as {login!r}, not as {party!r}: only "
            f"{party}'s own login may write {topic} (`accord kafka provision` names each "
            f"party's login after it); give it {party}'s client file, or "
            f"ACCORD_KAFKA__USERNAME={party} and {party}'s password"
        )


async def check_ingress(probe: Probe, party: str, topic: str) -> None:
    """``ConfigError`` naming ``party`` and ``topic`` when Kafka says this login may not see
    ``topic`` (so not write it). "Cannot tell" starts the gateway: Kafka's ACLs decide then."""
    if await probe() is False:
        raise ConfigError(
            f"Kafka does not let this gateway's login see {topic}, so not write it: the "
            f"gateway of {party} needs {party}'s own Kafka login (its client file, or "
            "ACCORD_KAFKA__USERNAME and ACCORD_KAFKA__PASSWORD), granted by "
            "`accord kafka provision`"
        )


class IngressWrite:
    """Whether the last write to the party's ingress topic was refused by Kafka's ACLs."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._refused = False
        self._refusals = 0  # each time refused starts: what Kafka says after is of that one
        self._news = asyncio.Event()
        self._refused_at = 0.0  # the last refused write: Write was refused then, whatever after
        self._backoff = FIRST_BACKOFF  # this refusal's
        self._next_backoff = FIRST_BACKOFF  # the next refusal's

    @property
    def held(self) -> bool:
        """Whether the gateway says not ready because Kafka refused a write (the gauge)."""
        return self._refused

    def refused(self, topic: str) -> None:
        """Kafka's ACLs refused a write to ``topic``: an error, once each time it starts."""
        self._refused_at = self._clock()
        if not self._refused:
            # The topic and why: never anything of the event (it was not written).
            log.error("gateway_write_refused", topic=topic,
                      why="Kafka refuses this gateway's login the write: not the party's "
                      "login, or its grant was taken away")  # fmt: skip
            self._refused = True
            self._refusals += 1
            self._backoff = self._next_backoff
            self._next_backoff = min(self._next_backoff * 2, MAX_BACKOFF)
            self._news.set()  # the watch asks Kafka now: what it says at the refusal counts

    def written(self) -> None:
        self._refused = False
        self._next_backoff = FIRST_BACKOFF

    def check(self) -> Check:
        if self._refused:
            return Check(ok=False, reason="kafka refused the gateway's write")
        return OK

    async def watch(self, probe: Probe, recheck: float) -> None:
        """While refused, ask Kafka at once and then once a ``recheck`` whether the login may
        see the topic: ready again on a yes after a no since the refusal (the grant given
        back), or on a yes once the back-off has passed since the last refused write. Kafka
        grants Describe with Read too, and has no dry-run produce (an idempotent producer's
        InitProducerId is not a topic's Write), so a yes alone proves nothing: the back-off
        bounds how often a login that may not write is let try, and a platform that stops
        sending to an unready gateway cannot hold a sound one unready for good."""
        refusal, denied = 0, False
        while True:
            self._news.clear()
            if self._refused:
                if refusal != self._refusals:  # a refusal since the last question
                    refusal, denied = self._refusals, False
                seen = await probe()
                if self._refused and refusal == self._refusals:  # else a write told since
                    if seen is False:
                        denied = True
                    elif seen is True and (denied or self._backed_off()):
                        self._refused = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._news.wait(), recheck if self._refused else None)

    def _backed_off(self) -> bool:
        return self._clock() - self._refused_at >= self._backoff
