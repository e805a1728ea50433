"""The console's header links a signed-in officer to the page that changes their own
password (broker.webauth's /account/password): without a link nobody finds it."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.unit.console.conftest import sign_in


def test_signed_in_pages_link_to_the_password_page_and_it_is_marked_current(
    client: TestClient,
) -> None:
    assert 'id="change-password"' not in client.get("/login").text
    sign_in(client)
    assert '<a href="/account/password" id="change-password">Change password</a>' in (
        client.get("/subjects").text
    )
    page = client.get("/account/password")
    assert page.status_code == 200
    assert 'id="change-password" aria-current="page"' in page.text
