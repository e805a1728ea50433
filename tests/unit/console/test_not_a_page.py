"""An address that is no page, or a form's address opened, answers with a page (title,
language, a way home), not JSON; and verifying the chains ends on ``/chains`` (Post/Redirect/
Get), the result shown there once and audited before it is."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from tests.unit.console.conftest import IndexingSink, sign_in


@pytest.mark.parametrize("signed_in", [False, True])
def test_an_unknown_address_is_a_page_not_found_page(client: TestClient, signed_in: bool) -> None:
    if signed_in:
        sign_in(client)
    r = client.get("/nope/9434765919", follow_redirects=False)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert '<html lang="en-GB">' in r.text
    assert "<title>Page not found · Accord</title>" in r.text
    assert '<a href="/">' in r.text
    assert "9434765919" not in r.text  # nothing of the address is repeated
    assert "nope" not in r.text
    assert '"detail"' not in r.text
    assert r.headers["content-security-policy"].startswith("default-src 'none'")


@pytest.mark.parametrize(
    "path", ["/chains/verify", "/overrides/review", "/logout", "/session/keep-alive"]
)
def test_opening_a_forms_address_is_a_page_saying_so(client: TestClient, path: str) -> None:
    r = client.get(path, follow_redirects=False)
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"
    assert "<title>This address is not a page · Accord</title>" in r.text
    assert "cannot be opened, reloaded or bookmarked. Nothing was done." in r.text
    assert '<a href="/">' in r.text


def test_verifying_redirects_to_the_chain_page_which_shows_the_result_once(
    client: TestClient, sink: IndexingSink
) -> None:
    token = sign_in(client)
    r = client.post("/chains/verify", data={"csrf": token}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/chains")
    # On record before anything shows it.
    assert [q.data["page"] for q in sink.queries()][-1] == "chains.verify"
    assert sink.queries()[-1].data["detail"]["result"] == "intact"
    page = client.get("/chains").text
    assert re.search(r'id="verify-result">audit log intact \(sqlite\)', page)
    # A reload shows what the index records of it, not the run again.
    again = client.get("/chains").text
    assert 'id="verify-result"' not in again
    assert re.search(r'id="last-verification">The index records the last verification as .* '
                     r"by ig\.jo from the console: passed", again)  # fmt: skip
    assert [q.data["page"] for q in sink.queries()][-3:] == ["chains.verify", "chains", "chains"]


def test_a_verification_shows_on_its_own_sessions_page_only(client: TestClient) -> None:
    token = sign_in(client)
    other = TestClient(client.app, base_url=str(client.base_url))
    sign_in(other)
    client.post("/chains/verify", data={"csrf": token}, follow_redirects=False)
    assert 'id="verify-result"' not in other.get("/chains").text
    assert 'id="verify-result"' in client.get("/chains").text
