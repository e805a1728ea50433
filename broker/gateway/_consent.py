"""Whether this gateway's party may write consent records, known before anything is produced.

A party that is not a consent authority has no grant on ``accord.consent`` (provisioning
gives one only to ``consent-authorities.yaml``'s parties), so Kafka refuses its writes. The
gateway loads no policy bundle (it runs in the agency's network, with the agency's keystore
only), so it asks Kafka itself, without producing: a metadata request for the topic, which
Kafka answers "not authorised" for a principal it would refuse. A refused party's consent
records are then answered 403 without a produce: aiokafka, asked to produce to a topic it is
refused, logs an error-level line each time it refreshes its metadata from then on, and log
alerting would page on a refusal the caller caused and was told of.

Kafka's ACLs stay the second line: a write Kafka refuses although the answer was yes (a grant
taken away since) is 403 as before, remembered as a refusal, and its aiokafka line is
dropped (:class:`QuietConsentRefusal`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from broker.topics import CONSENT

__all__ = ["RECHECK_S", "ConsentGate", "QuietConsentRefusal", "quiet_consent_refusals"]

#: How long a refusal stands before Kafka is asked again: a party made a consent authority
#: (and provisioned) is let through this long after, at most, without a gateway restart.
RECHECK_S = 60.0

Probe = Callable[[], Awaitable[bool | None]]


class ConsentGate:
    """Whether to try a consent record's write: no while Kafka's last word, within
    ``recheck`` seconds, was a refusal; else as ``probe`` says (True, False, or None when
    Kafka could not tell: then the write is tried, and Kafka decides). A yes is kept until
    a write is refused. Without a probe, every write is tried (Kafka alone decides)."""

    def __init__(
        self,
        probe: Probe | None = None,
        *,
        recheck: float = RECHECK_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probe = probe
        self._recheck = recheck
        self._clock = clock
        self._allowed = False
        self._refused_at: float | None = None
        self._lock = asyncio.Lock()  # one probe at a time: many consents at once ask once

    async def may_publish(self) -> bool:
        async with self._lock:
            if self._refused_at is not None:
                if self._clock() - self._refused_at < self._recheck:
                    return False
                self._refused_at = None
            if self._allowed or self._probe is None:
                return True
            verdict = await self._probe()
            if verdict is False:
                self._refused_at = self._clock()
                return False
            self._allowed = verdict is True
            return True

    def refused(self) -> None:
        """Kafka refused a consent record's write: refuse the next ones before producing."""
        self._allowed = False
        self._refused_at = self._clock()


class QuietConsentRefusal(logging.Filter):
    """Drops aiokafka's error-level "Topic accord.consent is not authorized for this client".

    It is logged when Kafka refuses the gateway's party a consent write (and again at each
    metadata refresh after), which the caller was answered 403 for and the gateway logged as
    ``gateway_refused``: an expected refusal the caller caused, not a fault to page on. Any
    other topic's refusal (the party's own ingress topic, say) is a fault, and still logged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.msg == "Topic %s is not authorized for this client" and record.args == (CONSENT,)
        )


#: aiokafka's cluster metadata logs the line (aiokafka/cluster.py), under its module's name.
_AIOKAFKA_CLUSTER = "aiokafka.cluster"


@contextmanager
def quiet_consent_refusals() -> Iterator[None]:
    """:class:`QuietConsentRefusal` on aiokafka's cluster logger while the gateway runs."""
    logger = logging.getLogger(_AIOKAFKA_CLUSTER)
    quiet = QuietConsentRefusal()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)
