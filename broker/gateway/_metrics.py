"""The gateway's metrics and probes.

Labels come from the fixed sets below (an endpoint, an outcome, a record kind, a limit):
never a party's event, a field name, a caller's address or a token. The probes read only
what the gateway keeps anyway: whether it serves, and when Kafka last failed it.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from broker.gateway._limit import LimitKind
from broker.ops import OK, Check


class Endpoint(enum.StrEnum):
    EVENT = "event"
    BATCH = "batch"
    CONSENT = "consent"
    OTHER = "other"  # a path or method the gateway does not serve


class Outcome(enum.StrEnum):
    ACCEPTED = "accepted"  # Kafka confirmed every record
    INVALID = "invalid"  # a record failed the SDK's validation (422)
    MALFORMED = "malformed"  # not JSON, or not the JSON shape the endpoint takes (400)
    UNSUPPORTED_TYPE = "unsupported_type"  # not application/json (415)
    TOO_LARGE = "too_large"  # the body or the batch is over its limit (413)
    UNAUTHORISED = "unauthorised"  # no bearer token, or not the gateway's (401)
    TOO_MANY_FAILURES = "too_many_failures"  # too many 401s lately, token not compared (429)
    BAD_HOST = "bad_host"  # a Host the gateway does not answer to (400)
    NOT_FOUND = "not_found"  # no such path or method (404, 405)
    REFUSED = "refused"  # Kafka refused the party this write (403)
    KAFKA_UNAVAILABLE = "kafka_unavailable"  # nothing written (503)
    KAFKA_REFUSED = "kafka_refused"  # Kafka refused the gateway's login the event (503)
    UNCONFIRMED = "unconfirmed"  # Kafka may have written it (504): re-send, same id
    ERROR = "error"  # a fault of the gateway's own (500)
    CLIENT_GONE = "client_gone"  # the client hung up before its body was read: no answer


class GatewayMetrics:
    """The gateway's collectors on ``registry`` (the caller's: a test's, or the one the ops
    server exports), and when Kafka last failed it, for ``/readyz``."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        unready_for: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.unready_for = unready_for
        self._clock = clock
        self._kafka_failed_at: float | None = None
        self.requests = Counter(
            "accord_gateway_requests",
            "Requests to the publishing gateway, by endpoint and outcome.",
            ["endpoint", "outcome"],
            registry=registry,
        )
        self.records = Counter(
            "accord_gateway_published_records",
            "Records the gateway published and Kafka confirmed: event or consent.",
            ["kind"],
            registry=registry,
        )
        self.send_seconds = Histogram(
            "accord_gateway_send_seconds",
            "How long Kafka took to confirm a request's records (or to fail).",
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.auth_limited = Counter(
            "accord_gateway_auth_limited",
            "Requests refused (429) before their token was compared, after too many wrong "
            "tokens: from their address (client), or from every address together (all).",
            ["limit"],
            registry=registry,
        )
        self.ingress_refused = Gauge(
            "accord_gateway_ingress_refused",
            "1 while the gateway holds itself not ready after Kafka refused its login a write "
            "to its party's ingress topic; else 0.",
            registry=registry,
        )
        # Every pair at 0 from the start: a rate over a counter that appears late is wrong.
        for endpoint in Endpoint:
            for outcome in Outcome:
                self.requests.labels(endpoint=endpoint.value, outcome=outcome.value)
        for kind in ("event", "consent"):
            self.records.labels(kind=kind)
        for limit in LimitKind:
            self.auth_limited.labels(limit=limit.value)

    def ingress_held(self, held: Callable[[], bool]) -> None:
        """``accord_gateway_ingress_refused`` reads ``held`` at each scrape: never stale."""
        self.ingress_refused.set_function(lambda: 1.0 if held() else 0.0)

    def answered(self, endpoint: Endpoint, outcome: Outcome) -> None:
        self.requests.labels(endpoint=endpoint.value, outcome=outcome.value).inc()
        if outcome in (Outcome.KAFKA_UNAVAILABLE, Outcome.UNCONFIRMED):
            self._kafka_failed_at = self._clock()
        elif outcome is Outcome.ACCEPTED:
            self._kafka_failed_at = None

    def kafka_check(self) -> Check:
        """Not ready for ``unready_for`` seconds after Kafka failed a send (a load balancer
        sends elsewhere meanwhile); ready again after, so that the next send tries Kafka."""
        failed = self._kafka_failed_at
        if failed is not None and self._clock() - failed < self.unready_for:
            return Check(ok=False, reason="kafka did not take the last send")
        return OK
