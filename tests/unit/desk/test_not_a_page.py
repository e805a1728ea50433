"""The desk's unknown addresses and opened form addresses are pages, not JSON (its /metrics,
read by programs, stays JSON); and the session-timeout warning is the desk's as well."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from broker.desk import DeskDeps
from tests.unit.desk.conftest import Clock, sign_in

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
