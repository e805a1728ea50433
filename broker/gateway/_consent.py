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
dropped (:class:`QuietConsentRefusal`); that one, after a yes, is also logged as a warning
(``gateway_consent_grant_lost``): for a consent authority it is a fault. It is logged each
time a yes the gate holds meets a refused write: once, and, while the grant stays lost but
Kafka still says yes when asked again (Describe kept, Write taken), at most once a
``RECHECK_S`` after.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import structlog

from broker.topics import CONSENT

__all__ = [
    "NOT_TOLD_S",
    "RECHECK_S",
    "ConsentGate",
    "QuietConsentRefusal",
    "quiet_consent_refusals",
]

log = structlog.get_logger("accord.gateway")

#: How long a refusal stands before Kafka is asked again: a party made a consent authority
#: (and provisioned) is let through this long after, at most, without a gateway restart.
RECHECK_S = 60.0
#: How long "Kafka could not tell" stands (the writes are tried meanwhile, and Kafka's ACLs
#: decide): a slow or degraded Kafka is asked once in this long, not once per consent record,
#: so each record waits for a probe at most once in a while, never for one per record.
NOT_TOLD_S = 5.0

Probe = Callable[[], Awaitable[bool | None]]


class ConsentGate:
    """Whether to try a consent record's write: no while Kafka's last word, within
    ``recheck`` seconds, was a refusal (the probe's, or a write's); else as ``probe`` says
    (True, False, or None when Kafka could not tell: then the writes are tried, and Kafka
    decides, for ``not_told`` seconds before it is asked again). A yes is kept until a write
    is refused. Records that come while a probe is under way wait for that one probe, not one
    each. Without a probe, the writes are tried until Kafka refuses one; that refusal is
    remembered as a probe's is."""

    def __init__(
        self,
        probe: Probe | None = None,
        *,
        recheck: float = RECHECK_S,
        not_told: float = NOT_TOLD_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probe = probe
        self._recheck = recheck
        self._not_told = not_told
        self._clock = clock
        self._allowed = False
        self._refused_at: float | None = None
        self._not_told_at: float | None = None
        self._refusals = 0  # refused() calls: one during a probe outweighs its yes
        # The probe under way, shared by every record that comes meanwhile. No lock: the
        # state is read and set with no await between, and nothing holds up a record but
        # the one probe.
        self._asking: asyncio.Task[bool | None] | None = None

    async def may_publish(self) -> bool:
        if (verdict := self._known()) is not None or self._probe is None:
            return verdict is not False
        if self._asking is None:
            self._asking = asyncio.create_task(self._ask(self._probe))
            self._asking.add_done_callback(_retrieved)
        # Shielded: a caller gone (its request cancelled, the server stopping) does not
        # cancel the probe the others wait for; the task runs to its end either way.
        await asyncio.shield(self._asking)
        return self._known() is not False

    def _known(self) -> bool | None:
        """The answer without asking Kafka, or None when it must be asked."""
        now = self._clock()
        if self._refused_at is not None:
            if now - self._refused_at < self._recheck:
                return False
            self._refused_at = None
        if self._allowed or self._probe is None:
            return True
        if self._not_told_at is not None and now - self._not_told_at < self._not_told:
            return True
        return None

    async def _ask(self, probe: Probe) -> bool | None:
        refusals = self._refusals
        try:
            verdict = await probe()
        finally:
            self._asking = None
        if self._refusals != refusals:
            return verdict  # a write was refused meanwhile: that refusal stands, not the yes
        if verdict is False:
            self._refused_at = self._clock()
        elif verdict is True:
            self._allowed = True
        else:
            self._not_told_at = self._clock()
        return verdict

    def refused(self) -> None:
        """Kafka refused a consent record's write: refuse the next ones before producing.

        When the gate held a yes, a warning: for a consent authority, a grant lost
        (deprovisioned, or ACLs changed under it) is a fault, where the refusals themselves
        are logged at info, as the caller's to mend. The yes is dropped here, so the next
        warning needs another yes: Kafka asked again, a ``recheck`` later at the soonest."""
        if self._allowed:
            log.warning("gateway_consent_grant_lost", topic=CONSENT,
                        why="Kafka refused a consent write after it let this party")  # fmt: skip
        self._refusals += 1
        self._allowed = False
        self._refused_at = self._clock()


def _retrieved(asking: asyncio.Task[bool | None]) -> None:
    """A probe that raised, with every record that waited for it gone (cancelled): its
    exception read, so asyncio does not log "Task exception was never retrieved" at error
    level. Its type only: an exception's text may name a host or a login."""
    if not asking.cancelled() and (exc := asking.exception()) is not None:
        log.debug("gateway_consent_probe_failed", error=type(exc).__name__)


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
