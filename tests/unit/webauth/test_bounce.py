"""Where sign-in returns to: only a same-site path, and for a POST the form's page."""

from __future__ import annotations

import pytest
from starlette.datastructures import FormData
from starlette.requests import Request

from broker.webauth._bounce import bounce_location, form_page, safe_next, typed_something


def request(method: str, path: str, *, query: str = "", referer: str | None = None) -> Request:
    headers = [(b"host", b"127.0.0.1:8766")]
    if referer is not None:
        headers.append((b"referer", referer.encode()))
    return Request(
        {"type": "http", "method": method, "path": path, "query_string": query.encode(),
         "headers": headers, "scheme": "http", "server": ("127.0.0.1", 8766)}
    )  # fmt: skip


@pytest.mark.parametrize(
    "page", ["/child/abc-123", "/records?page=2", "/referral/e-1", "/subjects", "/"]
)
def test_a_same_site_path_is_a_page_to_return_to(page: str) -> None:
    assert safe_next(page) == page


@pytest.mark.parametrize(
    "page",
    [
        None, "", "//evil.example", "/\\evil.example", "https://evil.example",
        "/%2F%2Fevil", "/%2f/evil", "/%5Cevil.example", "\\\\evil.example", "evil.example",
        "javascript:alert(1)", "/child/x\r\nSet-Cookie: a=b", "/child/%0d%0aX: y",
        "/child/\u00e9", "/login", "/login?next=/x", "/logout", "/" + "a" * 600,
    ],
)  # fmt: skip
def test_anything_that_could_leave_the_site_or_loop_is_no_page_to_return_to(
    page: str | None,
) -> None:
    assert safe_next(page) is None


def test_a_bounced_get_returns_to_its_own_address_with_its_query() -> None:
    assert form_page(request("GET", "/records", query="page=3")) == "/records?page=3"


def test_a_bounced_post_returns_to_its_forms_page_never_the_post_endpoint() -> None:
    assert form_page(request("POST", "/child/c-1/decide")) == "/child/c-1"
    assert form_page(request("POST", "/records/search")) == "/records"
    assert form_page(request("POST", "/subjects")) == "/subjects"  # its GET is the form


def test_a_bounced_post_uses_a_same_origin_referer_and_ignores_another_sites() -> None:
    same = request("POST", "/child/c-1/decide", referer="http://127.0.0.1:8766/child/c-1?flag=f")
    assert form_page(same) == "/child/c-1?flag=f"
    other = request("POST", "/child/c-1/decide", referer="https://evil.example/phish")
    assert form_page(other) == "/child/c-1"


def test_the_sign_in_address_carries_the_page_and_says_when_typed_text_was_lost() -> None:
    bounced = request("POST", "/child/c-1/decide")
    assert bounce_location(bounced, lost=True) == "/login?next=%2Fchild%2Fc-1&lost=1"
    assert bounce_location(request("GET", "/"), lost=False) == "/login"


def test_a_form_with_a_record_field_is_typed_text_unless_the_app_says_it_was_sent_already() -> None:
    """Which forms lost nothing (a desk's Record it) is the app's to say, not the bounce's."""
    form = FormData([("csrf", "t"), ("reason", "Needs a hub."), ("record", "signed")])
    assert typed_something(form)
    assert not typed_something(form, already_sent=lambda f: f.get("record") is not None)
    assert not typed_something(FormData([("csrf", "t"), ("reason", " ")]))
