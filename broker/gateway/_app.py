"""The gateway's HTTP contract: plain JSON in, the SDK's ``Publisher`` behind, one JSON answer.

``POST /v1/events`` takes one contact event (a JSON object), ``POST /v1/events/batch`` a JSON
array of them (all or nothing, as ``publish_many``), ``POST /v1/consents`` one consent
record. Each is validated by the publisher exactly as the SDK validates (the same
``EventInvalid`` messages, which name fields and never quote values), sealed to the broker
and sent; the answer comes once Kafka has confirmed it (202), or says why not. Nothing a
caller sent is ever echoed back, logged or used as a metric label: answers carry fixed
phrases, the SDK's field paths and the event ids of records already validated.

Every request but the probes (``/healthz``, ``/readyz``) must carry the gateway's bearer
token and a ``Host`` the gateway answers to (broker.webauth.HostCheck), checked before
anything reads the body; a client address that sent too many wrong tokens lately is answered
429 before its token is compared (``_limit.AuthLimit``).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from broker.errors import AccordError, EventInvalid, SendUnconfirmed, TransportError
from broker.events import ContactEvent, Safeguarding
from broker.gateway._body import Refused, json_body
from broker.gateway._consent import ConsentGate
from broker.gateway._ingress import IngressWrite
from broker.gateway._limit import AuthLimit, Limited, LimitKind, Network, client_of
from broker.gateway._metrics import Endpoint, GatewayMetrics, Outcome
from broker.gateway._query import query_problem
from broker.kafka import access_denied
from broker.ops import OK, Check, first_failure
from broker.sdk import Publisher, Receipt, validate_batch
from broker.webauth import HostCheck

log = structlog.get_logger("accord.gateway")

EVENTS, BATCH, CONSENTS = "/v1/events", "/v1/events/batch", "/v1/consents"
PROBES = frozenset({"/healthz", "/readyz"})
_ENDPOINTS = {EVENTS: Endpoint.EVENT, BATCH: Endpoint.BATCH, CONSENTS: Endpoint.CONSENT}
_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
#: The query parameters each route takes; every other route takes none (_query).
_QUERIES = {CONSENTS: frozenset({"record_id"})}


class Publishing(Protocol):
    """What the gateway needs of ``broker.sdk.Publisher`` (a fake, in unit tests)."""

    party: str
    topic: str

    def validate(self, event: Mapping[str, Any]) -> ContactEvent: ...

    async def publish(self, event: Mapping[str, Any]) -> Receipt: ...

    async def publish_many(self, events: Iterable[ContactEvent]) -> list[Receipt]: ...

    async def publish_consent(
        self, record: Mapping[str, Any], *, record_id: str | None = None
    ) -> Receipt: ...


def _always() -> bool:
    return True


@dataclass(frozen=True, slots=True)
class GatewayDeps:
    """What the gateway's app is given: its publisher, its token, the names it answers to."""

    publisher: Publishing
    token: SecretStr
    hosts: HostCheck
    metrics: GatewayMetrics
    max_body_bytes: int = 1024 * 1024
    max_batch: int = 500
    retry_after_seconds: int = 30
    #: Wrong tokens, counted per client address and in all (a new one each app by default).
    auth_limit: AuthLimit = field(default_factory=AuthLimit)
    #: Proxies in front, each appending to X-Forwarded-For (broker.webauth.client_host),
    #: believed only on a connection from ``trusted_proxies``: 0, or from any other address,
    #: the connection's own address is the client's.
    forwarded_hops: int = 0
    trusted_proxies: tuple[Network, ...] = ()
    #: Whether the HTTP server is up (``/readyz``); the app alone, in a test, always is.
    serving: Callable[[], bool] = field(default=_always)
    #: Whether the party may write consent records, asked before producing one (_consent);
    #: without a probe (the default), the first write Kafka's ACLs refuse decides, and is
    #: remembered for RECHECK_S as a probe's refusal is.
    consent_gate: ConsentGate = field(default_factory=ConsentGate)
    #: Whether Kafka's ACLs refused the last write to the party's ingress topic (/readyz).
    ingress: IngressWrite = field(default_factory=IngressWrite)

    def __post_init__(self) -> None:
        self.metrics.ingress_held(lambda: self.ingress.held)


def _answer(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(body, status_code=status, headers={**_HEADERS, **(headers or {})})


def _error(refused: Refused) -> Response:
    extra = dict(refused.extra)
    headers = extra.pop("headers", None)
    body = {"error": refused.outcome.value, "message": refused.message, **extra}
    return _answer(refused.status, body, headers)


def _refusal(deps: GatewayDeps, endpoint: Endpoint, refused: Refused) -> Response:
    deps.metrics.answered(endpoint, refused.outcome)
    log.info("gateway_refused", endpoint=endpoint.value, outcome=refused.outcome.value,
             status=refused.status)  # fmt: skip
    return _error(refused)


def _fault(deps: GatewayDeps, endpoint: Endpoint, exc: BaseException) -> Response:
    if isinstance(exc, ClientDisconnect):
        raise exc  # past Starlette's 500, to the guard (_client_gone): no one to answer
    deps.metrics.answered(endpoint, Outcome.ERROR)
    log.error("gateway_fault", endpoint=endpoint.value, error=type(exc).__name__)
    return _error(Refused(500, Outcome.ERROR, "the gateway failed; see its log"))


def _client_gone(deps: GatewayDeps, endpoint: Endpoint) -> None:
    # The records system hung up mid-body: its network's doing, not a fault to page on-call
    # for; nothing was written and there is no one to answer.
    deps.metrics.answered(endpoint, Outcome.CLIENT_GONE)
    log.info("gateway_client_gone", endpoint=endpoint.value)


def _digest(token: str) -> bytes:
    # Compared as digests, so that the comparison takes the same time whatever the length.
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


class _Guard:
    """Host and bearer token, before any route reads anything; and the last word on a
    fault: its type is logged, never its message, and the caller gets a fixed 500."""

    def __init__(self, app: ASGIApp, deps: GatewayDeps) -> None:
        self.app = app
        self.deps = deps
        self._token = _digest(deps.token.get_secret_value())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        endpoint = _ENDPOINTS.get(path, Endpoint.OTHER)
        started = False

        async def sending(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            if path not in PROBES:
                self._check(Request(scope))
            if path in _ENDPOINTS or path in PROBES:  # any other path is a 404
                _check_query(path, scope.get("query_string", b""))
            await self.app(scope, receive, sending)
        except Refused as refused:
            await _refusal(self.deps, endpoint, refused)(scope, receive, send)
        except ClientDisconnect:
            _client_gone(self.deps, endpoint)
        except Exception as exc:  # noqa: BLE001  # its type is logged, never its message
            if started:
                return  # the app's handler (_fault) has logged it and answered
            await _fault(self.deps, endpoint, exc)(scope, receive, send)

    def _check(self, request: Request) -> None:
        if not self.deps.hosts.allows(request.headers.get("host")):
            raise Refused(400, Outcome.BAD_HOST, "this gateway does not answer to that host name")
        limit = self.deps.auth_limit
        client = client_of(request, self.deps.forwarded_hops, self.deps.trusted_proxies)
        limited = limit.refused(client)
        if limited is not None:
            raise self._limited(limited)
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        # Both compared whatever the scheme: the time taken says nothing of which was wrong.
        right = hmac.compare_digest(_digest(given.strip()), self._token)
        if scheme.lower() != "bearer" or not right:
            limit.failed(client)
            raise Refused(
                401, Outcome.UNAUTHORISED, "missing or wrong bearer token",
                headers={"WWW-Authenticate": 'Bearer realm="accord-gateway"'},
            )  # fmt: skip
        limit.succeeded(client)

    def _limited(self, limited: Limited) -> Refused:
        # Neither the address nor anything the request carried: which limit, and the wait.
        self.deps.metrics.auth_limited.labels(limit=limited.kind.value).inc()
        log.warning("gateway_auth_limited", limit=limited.kind.value,
                    retry_after=limited.retry_after)  # fmt: skip
        whose = "this address" if limited.kind is LimitKind.CLIENT else "many addresses"
        return Refused(
            429, Outcome.TOO_MANY_FAILURES,
            f"too many wrong bearer tokens from {whose} lately: wait Retry-After seconds",
            headers={"Retry-After": str(limited.retry_after)},
        )  # fmt: skip


def _check_query(path: str, query: bytes) -> None:
    if (problem := query_problem(path, query, _QUERIES)) is not None:
        raise Refused(400, Outcome.MALFORMED, problem)


def _invalid(exc: EventInvalid) -> Refused:
    problems = [{"field": path, "message": message} for path, message in exc.problems]
    first = problems[0]["field"] if problems else "(body)"
    return Refused(422, Outcome.INVALID, str(exc), field=first, problems=problems, more=exc.more)


def _validated(publisher: Publishing, items: list[Any]) -> list[ContactEvent]:
    """A batch checked as ``publish_many`` checks one (broker.sdk.validate_batch: places,
    repeated ids, the cap on problems listed), each item first required to be an object."""

    def validate(item: Any) -> ContactEvent:
        # The SDK would read a string as an event's JSON text: a JSON string in the array is
        # the caller's mistake, not an event. "(event)" is the path that names it ``[i]``.
        if not isinstance(item, dict):
            raise EventInvalid([("(event)", "must be a JSON object")])
        return publisher.validate(item)

    return validate_batch(items, validate)


_NOT_AN_AUTHORITY = (
    "Kafka does not let this party write consent records (is it a consent authority, "
    "policies/consent-authorities.yaml?); nothing was written"
)


def _not_sent(endpoint: Endpoint, exc: TransportError, deps: GatewayDeps) -> Refused:
    """What to tell the caller when Kafka did not confirm: the SDK's rule (docs/sdk.md)."""
    if isinstance(exc, SendUnconfirmed):
        again = {
            Endpoint.EVENT: "send it again under the same event_id, never as a new event",
            Endpoint.BATCH: "send the same batch again unchanged, under the same event_ids",
            Endpoint.CONSENT: "send it again with ?record_id= this answer's record_id, never "
            "without (a new id would record the same consent twice)",
        }[endpoint]
        # A consent record's id is the gateway's (or the caller's ?record_id=): the caller
        # needs it to re-send the same record rather than a second one.
        ids = (
            {"record_id": exc.event_ids[0]}
            if endpoint is Endpoint.CONSENT and exc.event_ids
            else {}
        )
        return Refused(
            504, Outcome.UNCONFIRMED,
            f"Kafka did not confirm in time and may have written it: {again} (the broker "
            "takes an id once)", **ids,
        )  # fmt: skip
    if access_denied(exc):
        if endpoint is Endpoint.CONSENT:  # a party that is no consent authority: the caller's
            return Refused(403, Outcome.REFUSED, _NOT_AN_AUTHORITY)
        # The party's own topic: the gateway's login is wrong or lost its grant. Not the
        # caller's doing, and the event is not written: it keeps it and sends it again.
        deps.ingress.refused(deps.publisher.topic)
        return Refused(
            503, Outcome.KAFKA_REFUSED,
            f"Kafka refused this gateway's login the write to {deps.publisher.topic}, and "
            "nothing was written: the gateway is misconfigured; send it again later, under "
            "the same event_id",
            headers={"Retry-After": str(deps.retry_after_seconds)},
        )  # fmt: skip
    return Refused(
        503, Outcome.KAFKA_UNAVAILABLE,
        "Kafka could not be reached, and nothing was handed to it: send it again later, "
        "under the same event_id",
        headers={"Retry-After": str(deps.retry_after_seconds)},
    )  # fmt: skip


async def _publishing(
    deps: GatewayDeps, endpoint: Endpoint, kind: str, send: Callable[[], Awaitable[list[Receipt]]]
) -> list[Receipt]:
    """``send``'s receipts, counted; every failure as the ``Refused`` it is answered with."""
    started = time.perf_counter()
    try:
        receipts = await send()
    except EventInvalid as exc:
        raise _invalid(exc) from None
    except TransportError as exc:
        deps.metrics.send_seconds.observe(time.perf_counter() - started)
        log.warning("gateway_not_sent", endpoint=endpoint.value, error=type(exc).__name__)
        raise _not_sent(endpoint, exc, deps) from None
    except AccordError as exc:
        # Sealing failed (a key expired or revoked since the start, say): the gateway's
        # fault, not the caller's; its type only, as for any fault.
        log.error("gateway_not_sealed", endpoint=endpoint.value, error=type(exc).__name__)  # noqa: TRY400  # never a traceback: its locals hold the event
        raise Refused(500, Outcome.ERROR, "the gateway could not seal it; see its log") from None
    deps.metrics.send_seconds.observe(time.perf_counter() - started)
    deps.metrics.records.labels(kind=kind).inc(len(receipts))
    deps.metrics.answered(endpoint, Outcome.ACCEPTED)
    if endpoint is not Endpoint.CONSENT:
        deps.ingress.written()
    log.info("gateway_published", endpoint=endpoint.value, topic=receipts[0].topic,
             ids=[r.event_id for r in receipts])  # fmt: skip
    return receipts


def _warned(answer: dict[str, Any], said: list[tuple[str, str]]) -> dict[str, Any]:
    """``answer`` with the event's ``warnings`` (Publisher.warnings: a field and what it
    means, never a value) when it has any: accepted, but likely not what the sender meant."""
    if said:
        answer["warnings"] = [{"field": f, "warning": m} for f, m in said]
    return answer


def _safeguarding(body: dict[str, Any]) -> Safeguarding:
    """The accepted event's safeguarding part, read again for its warnings (the publisher
    took the body whole, and validated this part already)."""
    try:
        return Safeguarding.model_validate(body.get("safeguarding") or {})
    except ValueError:  # pydantic's ValidationError is one; not reached for a valid event
        return Safeguarding()


def create_gateway_app(deps: GatewayDeps) -> ASGIApp:
    """The gateway's ASGI app (no docs pages, no OpenAPI schema: a fixed contract)."""
    publisher = deps.publisher

    async def event(request: Request) -> Response:
        body = await json_body(request, deps.max_body_bytes)
        if not isinstance(body, dict):
            raise Refused(400, Outcome.MALFORMED, "the body must be one JSON object (an array "
                           f"of events goes to {BATCH})")  # fmt: skip

        async def send() -> list[Receipt]:
            return [await publisher.publish(body)]

        [receipt] = await _publishing(deps, Endpoint.EVENT, "event", send)
        answer = {"event_id": receipt.event_id, "topic": receipt.topic}
        said = Publisher.warnings(_safeguarding(body), need_level=body.get("need_level"))
        return _answer(202, _warned(answer, said))

    async def batch(request: Request) -> Response:
        body = await json_body(request, deps.max_body_bytes)
        if not isinstance(body, list) or not body:
            raise Refused(400, Outcome.MALFORMED, "the body must be a JSON array of events, "
                           "at least one")  # fmt: skip
        if len(body) > deps.max_batch:
            raise Refused(413, Outcome.TOO_LARGE, f"over {deps.max_batch} events in one batch")

        parsed: list[ContactEvent] = []

        async def send() -> list[Receipt]:
            parsed.extend(_validated(publisher, body))
            return await publisher.publish_many(parsed)

        receipts = await _publishing(deps, Endpoint.BATCH, "event", send)
        answers = [
            _warned({"event_id": r.event_id, "topic": r.topic}, Publisher.warnings(e))
            for r, e in zip(receipts, parsed, strict=True)
        ]
        return _answer(202, {"events": answers})

    async def consent(request: Request) -> Response:
        body = await json_body(request, deps.max_body_bytes)
        if not isinstance(body, dict):
            raise Refused(400, Outcome.MALFORMED, "the body must be one JSON object")

        # The caller's id for a re-send after a 504 (the SDK refuses one not a canonical UUID).
        record_id = request.query_params.get("record_id")
        if not await deps.consent_gate.may_publish():
            # Answered as Kafka's refusal is, and counted and logged as it is, but Kafka is
            # not asked: aiokafka would log the refusal at error level (_consent).
            raise Refused(403, Outcome.REFUSED, _NOT_AN_AUTHORITY)

        async def send() -> list[Receipt]:
            return [await publisher.publish_consent(body, record_id=record_id)]

        try:
            [receipt] = await _publishing(deps, Endpoint.CONSENT, "consent", send)
        except Refused as refused:
            if refused.outcome is Outcome.REFUSED:  # Kafka's ACLs, the second line
                deps.consent_gate.refused()
            raise
        return _answer(202, {"record_id": receipt.event_id, "topic": receipt.topic})

    async def healthz(_request: Request) -> Response:
        return _answer(200, {"status": "ok"})

    async def readyz(_request: Request) -> Response:
        def serving() -> Check:
            return OK if deps.serving() else Check(ok=False, reason="not serving")

        check = first_failure([serving, deps.metrics.kafka_check, deps.ingress.check])
        status = "ok" if check.ok else "unavailable"
        return _answer(200 if check.ok else 503, {"status": status, "reason": check.reason})

    def endpoint_of(request: Request) -> Endpoint:
        return _ENDPOINTS.get(request.url.path, Endpoint.OTHER)

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refused)  # noqa: S101  # registered for Refused only
        return _refusal(deps, endpoint_of(request), exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        # Starlette's own: no such path (404), or not this method (405, with Allow).
        allowed = isinstance(exc, HTTPException) and exc.status_code == 405
        headers = dict((exc.headers or {}) if isinstance(exc, HTTPException) else {})
        return _refusal(deps, endpoint_of(request), Refused(
            405 if allowed else 404, Outcome.NOT_FOUND,
            "method not allowed" if allowed else "no such endpoint", headers=headers,
        ))  # fmt: skip

    async def fault(request: Request, exc: Exception) -> Response:
        return _fault(deps, endpoint_of(request), exc)

    app = Starlette(
        routes=[
            Route(EVENTS, event, methods=["POST"]),
            Route(BATCH, batch, methods=["POST"]),
            Route(CONSENTS, consent, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ],
        exception_handlers={Refused: refused, HTTPException: http_error, Exception: fault},
    )
    # Else "/v1/events/" is a 307 to a URL built from the Host header, and not JSON: a path
    # the gateway does not serve is a 404 like any other.
    app.router.redirect_slashes = False
    return _Guard(app, deps)
