"""The desk's sign-in page speaks to its staff, who are not its operators: no command line."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from broker.desk import DeskDeps


def test_the_sign_in_page_sends_staff_to_their_administrator_not_to_a_command(
    make_client: Callable[..., tuple[TestClient, DeskDeps]],
) -> None:
    client, _ = make_client(kind="hub", party="cog-tipton")
    page = client.get("/login").text
    assert "No account yet? Ask your desk administrator for an account." in page
    assert "add-user" not in page
    assert "<code>" not in page
