"""The gateway accepts a safeguarding concern sent with an empty justification (a valid
event: the brief decides it, with no override) and its 202 warns that it will not override
consent, naming the field, never the value."""

from __future__ import annotations

from tests.unit.gateway.conftest import Gateway

EVENTS, BATCH = "/v1/events", "/v1/events/batch"
WARNING = {
    "field": "safeguarding.concern",
    "warning": "is true but its justification is empty: it will not override consent "
    "(docs/policy-language.md)",
}


def test_an_unjustified_concern_is_accepted_with_a_warning_naming_the_field(gw: Gateway) -> None:
    event = gw.event(safeguarding={"concern": True, "justification": "\u200b "})
    r = gw.post(EVENTS, event)
    assert r.status_code == 202
    assert r.json() == {"event_id": event["event_id"], "topic": "accord.ingress.wmp",
                        "warnings": [WARNING]}  # fmt: skip
    assert len(gw.kafka.sent) == 1


def test_a_batch_warns_on_the_unjustified_event_only(gw: Gateway) -> None:
    justified = {"concern": True, "justification": "Asking would put her at risk."}
    events = [gw.event(safeguarding=justified),
              gw.event(safeguarding={"concern": True, "justification": None}),
              gw.event()]  # fmt: skip
    r = gw.post(BATCH, events)
    assert r.status_code == 202
    assert [e.get("warnings") for e in r.json()["events"]] == [None, [WARNING], None]
    assert [e["event_id"] for e in r.json()["events"]] == [e["event_id"] for e in events]


def test_no_warning_at_need_level_4_where_the_override_applies_anyway(gw: Gateway) -> None:
    unjustified = {"concern": True, "justification": ""}
    single = gw.event(safeguarding=unjustified, need_level=4)
    r = gw.post(EVENTS, single)
    assert r.status_code == 202
    assert "warnings" not in r.json()
    r = gw.post(BATCH, [gw.event(safeguarding=unjustified, need_level=4)])
    assert r.status_code == 202
    assert [e.get("warnings") for e in r.json()["events"]] == [None]
