"""Query parameters: a route takes only its own (``?record_id=`` on ``/v1/consents``), once.

A misspelt one ignored would file a consent record twice (a re-send after a 504 under a new
id); one given twice, taken silently, may be the one the caller did not mean."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from broker.keys import FileKeyStore
from tests.unit.gateway.conftest import AUTH, Gateway, make_gateway

CONSENTS = "/v1/consents"
RECORD = {"subject": {"nhs_number": "9997877896"}, "state": "given",
          "purposes": ["early_help"], "recipients": ["kind:hub"],
          "recorded_by": "hv-sandwell", "recorded_at": "2026-11-01T15:30:00Z"}  # fmt: skip
VALUE = "9434765919"  # a value the caller sent: never said back


@pytest.fixture
def authority(agency_keys: FileKeyStore) -> Iterator[Gateway]:
    with make_gateway(agency_keys, party="hv-sandwell") as g:
        yield g


def test_a_misspelt_record_id_is_refused_naming_it_and_nothing_is_filed(
    authority: Gateway,
) -> None:
    r = authority.post(f"{CONSENTS}?recordid={VALUE}", RECORD)
    assert (r.status_code, r.json()["error"]) == (400, "malformed")
    assert r.json()["message"] == (
        "query parameter 'recordid' (did you mean 'record_id'?) is not one /v1/consents takes "
        "(only ?record_id=); nothing was written"
    )
    assert VALUE not in r.text
    assert authority.kafka.sent == []


def test_a_record_id_given_twice_is_refused_not_one_taken(authority: Gateway) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    r = authority.post(f"{CONSENTS}?record_id={a}&record_id={b}", RECORD)
    assert r.status_code == 400
    assert "query parameter 'record_id' is given more than once" in r.json()["message"]
    assert str(a) not in r.text
    assert str(b) not in r.text
    assert authority.kafka.sent == []
    r = authority.post(f"{CONSENTS}?record_id={a}", RECORD)  # once: taken
    assert (r.status_code, r.json()["record_id"]) == (202, str(a))


@pytest.mark.parametrize(
    ("path", "query", "says"),
    [
        (
            "/v1/events",
            "record_id=x",
            "/v1/events takes no query parameters (query parameter 'record_id' given)",
        ),
        (
            "/v1/events/batch",
            "dry_run=1",
            "takes no query parameters (an unknown query parameter given)",
        ),
        (
            CONSENTS,
            "ruby_holland=1",
            "an unknown query parameter is not one /v1/consents takes (only ?record_id=)",
        ),
        (CONSENTS, "Record_ID=1", "an unknown query parameter"),
        ("/readyz", "verbose", "/readyz takes no query parameters"),
        ("/healthz", "x=1", "/healthz takes no query parameters"),
    ],
)
def test_every_route_refuses_a_parameter_it_does_not_take_naming_only_our_own_names(
    gw: Gateway, path: str, query: str, says: str
) -> None:
    """A name not ours nor near one is the caller's text (a surname, say): not said back."""
    if path.startswith("/v1/"):
        r = gw.post(f"{path}?{query}", gw.event() if path == "/v1/events" else [gw.event()])
    else:
        r = gw.client.get(f"{path}?{query}")
    assert (r.status_code, r.json()["error"]) == (400, "malformed")
    assert says in r.json()["message"]
    assert "ruby" not in r.text
    assert "Record_ID" not in r.text
    assert gw.kafka.sent == []


def test_the_token_is_checked_before_the_query(gw: Gateway) -> None:
    r = gw.client.post("/v1/events?x=1", content=b"{}")
    assert r.status_code == 401
    assert gw.client.get("/v1/nowhere?x=1", headers=AUTH).status_code == 404
