"""What the gateway logs and exports: event ids and outcomes, never a person or a token."""

from __future__ import annotations

import json

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
