"""The desk's unknown addresses and opened form addresses are pages, not JSON (its /metrics,
read by programs, stays JSON); and the session-timeout warning is the desk's as well, sending
a page drawn from a form's POST back to the form's page, never the POST's address."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from broker.desk import DeskDeps, DeskStore, children_in
from broker.errors import TransportError
from tests.unit.desk.conftest import (
    PASSWORD,
    SECRET,
    USER,
    Clock,
    FakePublisher,
    csrf_of,
    delivery,
    sign_in,
)

Make = Callable[..., tuple[TestClient, DeskDeps]]


def test_an_unknown_address_is_the_desks_page_not_found_page(make_client: Make) -> None:
    client, _ = make_client()
    r = client.get("/nope/9434765919")
    assert r.status_code == 404
    assert '<html lang="en-GB">' in r.text
    assert "<title>Page not found · Sandwell-Coord · Accord desk</title>" in r.text
    assert '<a href="/">' in r.text
    assert "9434765919" not in r.text
    assert '"detail"' not in r.text


@pytest.mark.parametrize("path", ["/child/x/decide", "/referral/e1/outcome", "/logout"])
def test_opening_a_forms_address_is_a_page_saying_so(make_client: Make, path: str) -> None:
    client, _ = make_client()
    sign_in(client)
    r = client.get(path)
    assert (r.status_code, r.headers["allow"]) == (405, "POST")
    assert "<title>This address is not a page · Sandwell-Coord · Accord desk</title>" in r.text
    assert "only takes a form sent from one of the desk&#39;s pages" in r.text
    assert "Nothing was done." in r.text


def test_metrics_answers_its_errors_in_json_as_before(make_client: Make) -> None:
    client, _ = make_client()
    r = client.post("/metrics", data={"x": "1"})
    assert (r.status_code, r.json()) == (405, {"detail": "Method Not Allowed"})
    r = client.get("/metrics/more")
    assert (r.status_code, r.json()) == (404, {"detail": "Not Found"})


def test_the_desk_warns_before_its_session_ends_and_keeps_it_alive(
    make_client: Make, clock: Clock
) -> None:
    client, _ = make_client()
    token = sign_in(client)
    tag = re.search(r'<script src="/static/session\.js" defer ([^>]*)>', client.get("/").text)
    assert tag is not None
    assert 'data-idle-seconds="900"' in tag.group(1)
    assert f'data-csrf="{token}"' in tag.group(1)
    assert client.get("/static/session.js").status_code == 200
    clock.advance(minutes=14)
    assert client.post("/session/keep-alive", data={"csrf": token}).status_code == 204
    clock.advance(minutes=14)
    assert client.get("/", follow_redirects=False).status_code == 200


def _next_page(html: str) -> str | None:
    tag = re.search(r'<script src="/static/session\.js" defer ([^>]*)>', html)
    assert tag is not None, "a signed-in page loads the timeout warning"
    found = re.search(r'data-next="([^"]*)"', tag.group(1))
    return found.group(1) if found else None


async def _down(event: Mapping[str, Any]) -> None:
    raise TransportError("publishing to accord.ingress.x: Kafka did not answer within 5 s")


def test_a_gets_page_names_no_other_page_to_return_to(make_client: Make) -> None:
    """The script returns to the page's own address; the page does not repeat it (an address
    can hold what someone typed)."""
    client, _ = make_client()
    sign_in(client)
    assert _next_page(client.get("/records?x=9434765919").text) is None
    assert "9434765919" not in client.get("/records?x=9434765919").text


def test_search_results_timed_out_return_to_the_search_page_not_a_405(
    make_client: Make, clock: Clock
) -> None:
    """The results are drawn from POST /records/search, whose GET is no page: the script is
    told to come back to /records, and signing in again there works."""
    client, _ = make_client()
    token = sign_in(client)
    r = client.post("/records/search", data={"csrf": token, "reference": "WMP/1"})
    assert (r.status_code, r.url.path) == (200, "/records/search")
    assert _next_page(r.text) == "/records"
    clock.advance(minutes=15, seconds=2)
    page = client.get("/login?next=%2Frecords")
    assert "Your session ended" in page.text
    form = {"username": USER, "password": PASSWORD, "csrf": csrf_of(page.text), "next": "/records"}
    r = client.post("/login", data=form, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/records")
    assert client.get("/records").status_code == 200


def test_a_not_sent_referral_page_returns_to_the_childs_page(
    make_client: Make, store: DeskStore, publisher: FakePublisher
) -> None:
    record = delivery("e1")
    [child] = children_in(record.view, SECRET)
    store.add_delivery(record, [child], datetime.now(UTC))
    client, _ = make_client()
    token = sign_in(client)
    publisher.publish = _down  # type: ignore[method-assign]
    form = {"csrf": token, "action": "refer", "reason": "Family agreed today."}
    r = client.post(f"/child/{child}/decide", data=form)
    assert (r.status_code, r.url.path) == (503, f"/child/{child}/decide")
    assert _next_page(r.text) == f"/child/{child}"


def test_a_not_sent_outcome_page_returns_to_the_referrals_page(
    make_client: Make, store: DeskStore, publisher: FakePublisher
) -> None:
    referral = delivery("r1", recipient="cog-west-bromwich", type="coordination.referral")
    store.add_delivery(referral, children_in(referral.view, SECRET), datetime.now(UTC))
    client, _ = make_client(kind="hub", party="cog-west-bromwich")
    token = sign_in(client)
    publisher.publish = _down  # type: ignore[method-assign]
    form = {"csrf": token, "outcome": "support_offered", "summary": "Visit booked."}
    r = client.post("/referral/r1/outcome", data=form)  # the desk sends no Referer
    assert r.status_code == 503
    assert _next_page(r.text) == "/referral/r1"
