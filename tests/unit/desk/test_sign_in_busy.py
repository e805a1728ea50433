"""A sign-in made while too many checks wait is refused at once, said so (503) and counted."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from broker.desk import DeskDeps
from tests.unit.desk.conftest import PASSWORD, USER, csrf_of


def test_a_sign_in_with_the_check_queue_full_is_refused_503_and_counted(
    make_client: Callable[..., tuple[TestClient, DeskDeps]],
) -> None:
    client, deps = make_client()
    token = csrf_of(client.get("/login").text)
    client.app.state.desk.guard.hashing = SimpleNamespace(full=lambda _client: True)  # type: ignore[attr-defined]
    with capture_logs() as logs:
        r = client.post("/login", data={"username": USER, "password": PASSWORD, "csrf": token},
                        follow_redirects=False)  # fmt: skip
    assert r.status_code == 503
    assert "too many sign-ins at once" in r.text
    assert deps.registry.get_sample_value("accord_desk_sign_ins_busy_total") == 1
    assert [(e["event"], e["throttled"]) for e in logs] == [("desk_sign_in_failed", "busy")]
