"""The gateway's HTTP contract: what each request is answered, and what reaches Kafka."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

from structlog.testing import capture_logs

from broker.keys import FileKeyStore
from broker.topics import CONSENT, ingress
from tests.unit.gateway.conftest import AUTH, TOKEN, Gateway, make_gateway

EVENTS, BATCH, CONSENTS = "/v1/events", "/v1/events/batch", "/v1/consents"


def test_a_valid_event_is_sealed_published_and_answered_202_with_its_id_and_topic(
    gw: Gateway,
) -> None:
    event = gw.event()
    r = gw.post(EVENTS, event)
    assert r.status_code == 202
    assert r.json() == {"event_id": event["event_id"], "topic": ingress("wmp")}
    [(topic, key, value)] = gw.kafka.sent
    assert (topic, key) == (ingress("wmp"), event["event_id"].encode())
    # Sealed: nothing of the child crosses Kafka readable.
    assert event["subjects"][0]["family_name"].encode() not in value
    assert event["subjects"][0]["nhs_number"].encode() not in value
    assert gw.count("event", "accepted") == 1


def test_every_request_needs_the_bearer_token(gw: Gateway) -> None:
    """No header, another scheme, a wrong token, the token with a character more: 401,
    and nothing is read or sent."""
    for headers in ({}, {"Authorization": f"Basic {TOKEN}"},
                    {"Authorization": "Bearer " + "x" * len(TOKEN)},
                    {"Authorization": f"Bearer {TOKEN}x"}):  # fmt: skip
        r = gw.client.post(EVENTS, content=json.dumps(gw.event()),
                           headers={"Content-Type": "application/json", **headers})  # fmt: skip
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert r.json()["error"] == "unauthorised"
    assert gw.kafka.sent == []
    assert gw.count("event", "unauthorised") == 4


def test_unknown_paths_and_methods_need_the_token_too(gw: Gateway) -> None:
    assert gw.client.get("/v1/whatever").status_code == 401
    assert gw.client.get("/v1/whatever", headers=AUTH).status_code == 404
    r = gw.client.get(EVENTS, headers=AUTH)
    assert r.status_code == 405
    assert r.json()["error"] == "not_found"


def test_a_host_the_gateway_does_not_answer_to_is_refused_before_the_token(gw: Gateway) -> None:
    """A DNS-rebinding page's own name in Host: 400, whatever else it sends."""
    r = gw.post(EVENTS, gw.event(), Host="evil.example:8780")
    assert r.status_code == 400
    assert r.json()["error"] == "bad_host"
    assert gw.kafka.sent == []


def test_an_invalid_event_is_422_naming_the_field_with_the_sdks_message_and_no_value(
    gw: Gateway,
) -> None:
    event = gw.event()
    bad = event["subjects"][0]["nhs_number"][:-1] + str(
        (int(event["subjects"][0]["nhs_number"][-1]) + 1) % 10
    )
    event["subjects"][0]["nhs_number"] = bad
    r = gw.post(EVENTS, event)
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "invalid"
    assert body["field"] == "subjects[0].nhs_number"
    assert body["problems"][0]["field"] == "subjects[0].nhs_number"
    assert "check digit" in body["problems"][0]["message"]
    assert bad not in r.text
    assert event["subjects"][0]["family_name"] not in r.text
    assert gw.kafka.sent == []


def test_an_unknown_key_is_not_echoed_unless_it_is_a_near_miss_of_a_field(gw: Gateway) -> None:
    """A surname used as a key by a mapping mistake is personal data: never in the 422."""
    event = gw.event(ruby_holland="x")
    event["occured_at"] = event.pop("occurred_at")
    r = gw.post(EVENTS, event)
    assert r.status_code == 422
    assert "ruby_holland" not in r.text
    assert {(p["field"], p["message"]) for p in r.json()["problems"]} >= {
        ("(unknown field)", "is not a field of this record"),
        ("occured_at", "is not a field of this record (did you mean 'occurred_at'?)"),
    }


def test_an_event_of_another_sender_is_refused_as_the_sdk_refuses_it(gw: Gateway) -> None:
    r = gw.post(EVENTS, gw.event(sender="swbh"))
    assert r.status_code == 422
    assert r.json()["problems"] == [
        {"field": "sender", "message": "must be 'wmp', the publishing party"}
    ]


def test_malformed_json_wrong_shapes_and_duplicate_keys_are_400(gw: Gateway) -> None:
    headers = {**AUTH, "Content-Type": "application/json"}
    secret = "Smith 9990000018"
    cases = {
        b'{"summary": "' + secret.encode() + b'"': "the body is not valid JSON",
        b"\xff\xfe": "the body is not UTF-8",
        b'{"a": NaN}': "the body is not valid JSON (NaN or Infinity)",
        b'{"a": 1, "a": 2}': "a key appears twice in one JSON object",
    }
    for body, message in cases.items():
        r = gw.client.post(EVENTS, content=body, headers=headers)
        assert (r.status_code, r.json()["message"]) == (400, message)
        assert secret not in r.text
    r = gw.post(EVENTS, [gw.event()])
    assert r.status_code == 400
    assert BATCH in r.json()["message"]
    assert gw.post(BATCH, gw.event()).status_code == 400
    assert gw.post(BATCH, []).status_code == 400
    assert gw.kafka.sent == []


def test_json_nested_too_deeply_is_said_to_be_so_not_to_be_invalid(gw: Gateway) -> None:
    """Valid JSON or not, past what the parser takes, the depth is what the caller must fix."""
    headers = {**AUTH, "Content-Type": "application/json"}
    for body in (b"[" * 100_000 + b"]" * 100_000, b"[" * 100_000, b'{"a":' * 5_000 + b"1"):
        r = gw.client.post(EVENTS, content=body, headers=headers)
        assert r.status_code == 400
        assert r.json()["message"].startswith("the body is nested too deeply")
        assert "not valid JSON" not in r.json()["message"]
    assert gw.count("event", "malformed") == 3


def test_only_json_is_taken(gw: Gateway) -> None:
    for kind in ("text/plain", "application/x-www-form-urlencoded", "", "application/jsonx"):
        r = gw.client.post(EVENTS, content=json.dumps(gw.event()),
                           headers={**AUTH, "Content-Type": kind})  # fmt: skip
        assert r.status_code == 415, kind
        assert r.json()["error"] == "unsupported_type"
    r = gw.post(EVENTS, gw.event(), **{"Content-Type": "application/json; charset=UTF-8"})
    assert r.status_code == 202


def test_content_type_parameters_are_parsed_and_a_charset_must_be_utf8(gw: Gateway) -> None:
    """Quoted, spaced, in any order, with parameters we do not know: all JSON in UTF-8."""
    taken = ('application/json; charset="utf-8"', "Application/JSON ;charset = utf-8",
             "application/json; profile=x; charset=utf-8", "application/json;foo=bar")  # fmt: skip
    for kind in taken:
        r = gw.post(EVENTS, gw.event(), **{"Content-Type": kind})
        assert r.status_code == 202, kind
    for kind in ("application/json; charset=latin-1", 'application/json; charset="utf-16"',
                 "application/json; foo=bar; charset=iso-8859-1"):  # fmt: skip
        r = gw.post(EVENTS, gw.event(), **{"Content-Type": kind})
        assert r.status_code == 415, kind
        assert r.json()["message"].startswith("charset must be utf-8")


def test_a_byte_order_mark_before_the_json_is_ignored(gw: Gateway) -> None:
    """RFC 8259 lets a parser ignore one; some integration engines write it."""
    event = gw.event()
    r = gw.client.post(EVENTS, content=b"\xef\xbb\xbf" + json.dumps(event).encode(),
                       headers={**AUTH, "Content-Type": "application/json"})  # fmt: skip
    assert (r.status_code, r.json()["event_id"]) == (202, event["event_id"])


def test_a_trailing_slash_is_a_json_404_not_a_redirect(gw: Gateway) -> None:
    """Not a 307 to a URL built from the Host header: no such endpoint, counted."""
    for path in (EVENTS + "/", BATCH + "/", CONSENTS + "/"):
        r = gw.post(path, gw.event())
        assert r.status_code == 404, path
        assert r.json()["error"] == "not_found"
        assert "location" not in r.headers
    assert gw.count("other", "not_found") == 3
    assert gw.kafka.sent == []


def test_a_body_over_the_limit_is_413_before_it_is_read(agency_keys: FileKeyStore) -> None:
    with make_gateway(agency_keys, max_body_bytes=2048) as g:
        big = g.event(summary="x" * 4000)
        r = g.post(EVENTS, big)
        assert r.status_code == 413
        assert r.json()["error"] == "too_large"

        def chunks(body: bytes) -> Iterator[bytes]:  # no Content-Length: read to the limit
            yield body

        r = g.client.post(EVENTS, content=chunks(json.dumps(big).encode()),
                          headers={**AUTH, "Content-Type": "application/json"})  # fmt: skip
        assert r.status_code == 413
        assert g.kafka.sent == []


def test_a_batch_is_all_or_nothing_and_names_each_bad_event_by_its_index(gw: Gateway) -> None:
    good, bad = gw.event(), gw.event(need_level=7)
    r = gw.post(BATCH, [good, bad, "not an event"])
    assert r.status_code == 422
    fields = [p["field"] for p in r.json()["problems"]]
    assert fields[0].startswith("[1].need_level")
    assert "[2]" in fields
    assert gw.kafka.sent == []
    events = [gw.event() for _ in range(3)]
    r = gw.post(BATCH, events)
    assert r.status_code == 202
    assert r.json() == {"events": [{"event_id": e["event_id"], "topic": ingress("wmp")}
                                   for e in events]}  # fmt: skip
    assert [key for _, key, _ in gw.kafka.sent] == [e["event_id"].encode() for e in events]


def test_a_batch_repeating_an_event_id_sends_nothing_and_names_each_repeat(gw: Gateway) -> None:
    event, other = gw.event(), gw.event()
    r = gw.post(BATCH, [event, other, gw.event(), {**event, "summary": "corrected"}, other])
    assert r.status_code == 422
    assert r.json()["field"] == "[3].event_id"
    assert r.json()["problems"] == [
        {"field": "[3].event_id", "message": "the same as [0]"},
        {"field": "[4].event_id", "message": "the same as [1]"},
    ]
    assert gw.kafka.sent == []


def test_a_batch_over_the_limit_is_413(agency_keys: FileKeyStore) -> None:
    with make_gateway(agency_keys, max_batch=2) as g:
        r = g.post(BATCH, [g.event() for _ in range(3)])
        assert r.status_code == 413
        assert g.kafka.sent == []


def test_kafka_unreachable_is_503_with_retry_after_and_not_ready(gw: Gateway) -> None:
    gw.kafka.mode = "down"
    r = gw.post(EVENTS, gw.event())
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "30"
    assert r.json()["error"] == "kafka_unavailable"
    assert "same event_id" in r.json()["message"]
    assert gw.client.get("/readyz").status_code == 503
    gw.kafka.mode = "ok"
    assert gw.post(EVENTS, gw.event()).status_code == 202
    assert gw.client.get("/readyz").json() == {"status": "ok", "reason": "ok"}


def test_a_send_kafka_may_have_taken_is_504_telling_the_caller_to_resend_the_same_id(
    gw: Gateway,
) -> None:
    """SendUnconfirmed is not 'try later': the same event_id, never a new event."""
    gw.kafka.mode = "silent"
    event = gw.event()
    r = gw.post(EVENTS, event)
    assert r.status_code == 504
    assert r.json()["error"] == "unconfirmed"
    assert "same event_id" in r.json()["message"]
    assert gw.count("event", "unconfirmed") == 1
    gw.kafka.mode = "ok"
    r = gw.post(EVENTS, event)  # the re-send the answer asked for
    assert (r.status_code, r.json()["event_id"]) == (202, event["event_id"])


def test_kafka_refusing_the_gateways_own_topic_is_503_to_retry_and_not_ready_until_written(
    gw: Gateway,
) -> None:
    """The gateway's login, not the caller, is at fault (a grant taken away while it runs):
    nothing was written, so the caller keeps the event and sends it again; the log names
    the topic refused, once, and nothing of the event."""
    gw.kafka.mode = "denied"
    event = gw.event()
    with capture_logs() as logs:
        for _ in range(2):
            r = gw.post(EVENTS, event)
            assert r.status_code == 503
            assert r.headers["Retry-After"] == "30"
            assert r.json()["error"] == "kafka_refused"
            assert ingress("wmp") in r.json()["message"]
            assert "same event_id" in r.json()["message"]
        assert gw.post(BATCH, [gw.event()]).status_code == 503
    refused = [e for e in logs if e["event"] == "gateway_write_refused"]
    assert [(e["log_level"], e["topic"]) for e in refused] == [("error", ingress("wmp"))]
    assert event["event_id"] not in str(logs)
    assert gw.count("event", "kafka_refused") == 2
    ready = gw.client.get("/readyz")
    assert (ready.status_code, ready.json()["reason"]) == (503, "kafka refused the gateway's write")
    gw.kafka.mode = "ok"
    assert gw.post(EVENTS, event).status_code == 202
    assert gw.client.get("/readyz").status_code == 200


def test_a_consent_record_is_published_to_the_consent_topic(agency_keys: FileKeyStore) -> None:
    with make_gateway(agency_keys, party="hv-sandwell") as g:
        record = {"subject": {"nhs_number": "9997877896"}, "state": "withdrawn",
                  "purposes": ["*"], "recipients": ["kind:hub"], "recorded_by": "hv-sandwell",
                  "recorded_at": "2026-11-01T15:30:00Z"}  # fmt: skip
        r = g.post(CONSENTS, record)
        assert r.status_code == 202
        assert r.json()["topic"] == CONSENT
        uuid.UUID(r.json()["record_id"])
        assert [t for t, _, _ in g.kafka.sent] == [CONSENT]
        r = g.post(CONSENTS, {**record, "recorded_by": "wmp"})
        assert r.status_code == 422
        assert r.json()["field"] == "recorded_by"
        assert "9997877896" not in r.text


def test_an_invalid_consent_record_is_called_one_not_an_invalid_event(
    agency_keys: FileKeyStore,
) -> None:
    with make_gateway(agency_keys, party="hv-sandwell") as g:
        record = {"subject": {"nhs_number": "9997877896"}, "state": "maybe",
                  "purposes": ["*"], "recipients": ["kind:hub"], "recorded_by": "hv-sandwell",
                  "recorded_at": "2026-11-01T15:30:00Z"}  # fmt: skip
        for body in (record, {**record, "state": "given", "recorded_by": "wmp"}):
            r = g.post(CONSENTS, body)
            assert r.status_code == 422
            assert r.json()["message"].startswith("invalid consent record: ")


def test_probes_answer_without_a_token_and_say_nothing_else(gw: Gateway) -> None:
    assert gw.client.get("/healthz").json() == {"status": "ok"}
    assert gw.client.get("/readyz").status_code == 200
    assert gw.client.get("/healthz", headers={"Host": "evil.example"}).status_code == 200


def test_answers_are_not_cached(gw: Gateway) -> None:
    r = gw.post(EVENTS, gw.event())
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_an_unconfirmed_consent_record_is_sent_again_under_the_id_its_504_names(
    agency_keys: FileKeyStore,
) -> None:
    """A consent record has no id of its own: the 504 names the one the gateway gave it, and
    ``?record_id=`` sends the same record again under it, so it is filed once, not twice."""
    with make_gateway(agency_keys, party="hv-sandwell") as g:
        record = {"subject": {"nhs_number": "9997877896"}, "state": "given",
                  "purposes": ["early_help"], "recipients": ["kind:hub"],
                  "recorded_by": "hv-sandwell", "recorded_at": "2026-11-01T15:30:00Z"}  # fmt: skip
        g.kafka.mode = "silent"
        r = g.post(CONSENTS, record)
        assert (r.status_code, r.json()["error"]) == (504, "unconfirmed")
        record_id = r.json()["record_id"]
        assert uuid.UUID(record_id)
        assert "record_id" in r.json()["message"]
        g.kafka.mode = "ok"
        r = g.post(f"{CONSENTS}?record_id={record_id}", record)
        assert (r.status_code, r.json()["record_id"]) == (202, record_id)
        r = g.post(f"{CONSENTS}?record_id={record_id.upper()}", record)
        assert (r.status_code, r.json()["field"]) == (422, "record_id")
