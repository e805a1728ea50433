"""What the gateway logs and exports: event ids and outcomes, never a person or a token."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from prometheus_client import generate_latest
from structlog.testing import capture_logs

from tests.unit.gateway.conftest import AUTH, TOKEN, Gateway


def test_logs_and_metrics_hold_event_ids_and_outcomes_never_personal_data(gw: Gateway) -> None:
    good, bad = gw.event(), gw.event()
    child = bad["subjects"][0]
    child["dob"] = "2030-01-01"  # in the future: refused
    person = [child["given_name"], child["family_name"], child["nhs_number"],
              good["subjects"][0]["family_name"], good["subjects"][0]["nhs_number"]]  # fmt: skip
    with capture_logs() as logs:
        assert gw.post("/v1/events", good).status_code == 202
        assert gw.post("/v1/events", bad).status_code == 422
        assert gw.post("/v1/events/batch", [bad]).status_code == 422
        gw.client.post("/v1/events", content=b'{"summary": "' + person[0].encode(),
                       headers={**AUTH, "Content-Type": "application/json"})  # fmt: skip
        gw.kafka.mode = "silent"
        assert gw.post("/v1/events", good).status_code == 504
        gw.client.post("/v1/events", content=json.dumps(good),
                       headers={"Authorization": "Bearer wrong-" + TOKEN})  # fmt: skip
    text = json.dumps(logs, default=str) + generate_latest(gw.registry).decode()
    for value in (*person, TOKEN, "wrong-"):
        assert value not in text
    published = [e for e in logs if e["event"] == "gateway_published"]
    assert published == [
        {"event": "gateway_published", "log_level": "info", "endpoint": "event",
         "topic": "accord.ingress.wmp", "ids": [good["event_id"]]}
    ]  # fmt: skip
    # A refused event's id is not logged either: it was never validated, so it may be anything.
    assert bad["event_id"] not in text
    outcomes = [e.get("outcome") for e in logs if e["event"] == "gateway_refused"]
    assert outcomes == ["invalid", "invalid", "malformed", "unconfirmed", "unauthorised"]


def test_a_client_that_hangs_up_mid_body_is_counted_apart_logged_at_info_and_not_answered(
    gw: Gateway,
) -> None:
    """A records system's dropped connection is no gateway fault: not `error`, not paged."""
    body = json.dumps(gw.event()).encode()
    incoming = [
        {"type": "http.request", "body": body[:40], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[Any] = []

    async def receive() -> Any:
        return incoming.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    headers = {**AUTH, "Content-Type": "application/json", "Host": "127.0.0.1:8780",
               "Content-Length": str(len(body))}  # fmt: skip
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/events", "raw_path": b"/v1/events", "query_string": b"",
        "root_path": "", "client": ("testclient", 50000), "server": ("127.0.0.1", 8780),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }  # fmt: skip
    with capture_logs() as logs:
        asyncio.run(gw.client.app(scope, receive, send))
    assert sent == []  # no one is there to answer
    assert [(e["event"], e["log_level"]) for e in logs] == [("gateway_client_gone", "info")]
    assert body[:40].decode() not in json.dumps(logs)
    assert (gw.count("event", "client_gone"), gw.count("event", "error")) == (1, 0)
    assert gw.kafka.sent == []
