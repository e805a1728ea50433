"""A batch's 422 names its problems as the SDK's ``publish_many`` does (docs/gateway.md,
"Several events"): by place, repeats too, at most ``MAX_PROBLEMS`` listed and the rest counted."""

from __future__ import annotations

import uuid
from pathlib import Path

from broker.keys import FileKeyStore
from broker.sdk import MAX_PROBLEMS
from tests.unit.gateway.conftest import Gateway, make_gateway

BATCH = "/v1/events/batch"
DOC = (Path(__file__).resolve().parents[3] / "docs" / "gateway.md").read_text()


def test_a_rule_about_the_whole_event_names_the_event_alone_as_the_sdk_does(
    gw: Gateway,
) -> None:
    r = gw.post(BATCH, [gw.event(), gw.event(outcome="declined")])
    assert r.status_code == 422
    assert r.json()["field"] == "[1]"  # not "[1].(event)"
    assert r.json()["problems"] == [
        {"field": "[1]", "message": "outcome is only for coordination.referral_outcome events"}
    ]
    assert gw.kafka.sent == []


def test_a_repeated_id_is_named_even_when_another_event_is_invalid(gw: Gateway) -> None:
    event = gw.event()
    r = gw.post(BATCH, [event, gw.event(need_level="3"), "not an event", event])
    assert r.status_code == 422
    assert r.json()["problems"] == [
        {"field": "[1].need_level", "message": "must be an integer"},
        {"field": "[2]", "message": "must be a JSON object"},
        {"field": "[3].event_id", "message": "the same as [0]"},
    ]
    assert r.json()["more"] == 0
    assert gw.kafka.sent == []


def test_a_long_bad_batch_lists_its_first_problems_and_counts_the_rest(gw: Gateway) -> None:
    bad = gw.event(need_level="3")
    r = gw.post(BATCH, [{**bad, "event_id": str(uuid.uuid4())} for _ in range(60)])
    assert r.status_code == 422
    body = r.json()
    assert len(body["problems"]) == MAX_PROBLEMS == 20
    assert body["problems"][-1]["field"] == "[19].need_level"
    assert body["more"] == 40
    assert body["message"].endswith("(+57 more)")
    assert gw.kafka.sent == []


def test_a_single_event_s_422_says_none_more(gw: Gateway) -> None:
    r = gw.post("/v1/events", gw.event(need_level="3"))
    assert r.status_code == 422
    assert r.json()["more"] == 0
    assert r.json()["problems"] == [{"field": "need_level", "message": "must be an integer"}]


def test_a_single_event_with_many_problems_lists_the_first_and_counts_the_rest(
    gw: Gateway,
) -> None:
    """One event of 60 unknown keys is answered as a long batch is: 20 listed, 40 counted."""
    r = gw.post("/v1/events", {**gw.event(), **{f"extra_{i}": 1 for i in range(60)}})
    assert r.status_code == 422
    body = r.json()
    assert len(body["problems"]) == MAX_PROBLEMS
    assert body["more"] == 40
    assert body["message"].endswith("(+57 more)")


def test_a_single_consent_record_with_many_problems_lists_the_first_and_counts_the_rest(
    agency_keys: FileKeyStore,
) -> None:
    record = {"subject": {"nhs_number": "9997877896"}, "state": "withdrawn",
              "purposes": ["*"], "recipients": ["kind:hub"], "recorded_by": "hv-sandwell",
              "recorded_at": "2026-11-01T15:30:00Z"}  # fmt: skip
    with make_gateway(agency_keys, party="hv-sandwell") as g:
        r = g.post("/v1/consents", {**record, **{f"extra_{i}": 1 for i in range(50)}})
    assert r.status_code == 422
    body = r.json()
    assert len(body["problems"]) == MAX_PROBLEMS
    assert body["more"] == 30
    assert body["message"].startswith("invalid consent record: ")
    assert g.kafka.sent == []


def test_a_batch_counts_the_problems_its_events_did_not_list(gw: Gateway) -> None:
    many = {f"extra_{i}": 1 for i in range(30)}
    r = gw.post(BATCH, [{**gw.event(), **many}, gw.event(need_level="3")])
    body = r.json()
    assert len(body["problems"]) == MAX_PROBLEMS
    assert body["more"] == 11  # 10 of [0]'s and [1].need_level
    assert gw.kafka.sent == []


def test_the_doc_states_the_cap_on_problems_listed() -> None:
    assert f"The 422 lists the first {MAX_PROBLEMS} problems" in DOC
    assert '"more": 0' in DOC  # the example answer carries it
