"""Desk sign-in when an account's sealed second factor does not open: a page saying so, to
whoever gave the right password, and a log line naming the users file and the account."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pyotp
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from broker.crypto import random_bytes
from broker.desk import DeskDeps
from broker.webauth import TotpBox, UserFile
from tests.unit.desk.conftest import PASSWORD, USER, csrf_of


def attempt(client: TestClient, password: str, code: str) -> Any:  # the test client's response
    token = csrf_of(client.get("/login").text)
    form = {"username": USER, "password": password, "code": code, "csrf": token}
    return client.post("/login", data=form, follow_redirects=False)


def test_a_second_factor_that_does_not_open_is_a_page_saying_so_after_the_right_password(
    make_client: Callable[..., tuple[TestClient, DeskDeps]], users: UserFile
) -> None:
    users.add(USER, PASSWORD, replace=True, totp=True)
    enrolment = users.totp_enrolment(USER)
    assert enrolment is not None
    totp = pyotp.TOTP(enrolment.secret)
    data = json.loads(users.path.read_text())
    elsewhere = TotpBox(random_bytes(32), "desk:sandwell-coord").seal(USER, totp.secret)
    data["users"][USER]["totp"]["secret_sealed"] = elsewhere  # another keystore's
    users.path.write_text(json.dumps(data))
    client, _ = make_client()
    with capture_logs() as logs:
        wrong = attempt(client, "a wrong password!", totp.now())
    assert wrong.status_code == 401
    assert "cannot be checked" not in wrong.text
    assert [e["event"] for e in logs] == ["desk_sign_in_failed"]
    with capture_logs() as logs:
        right = attempt(client, PASSWORD, totp.now())
    assert right.status_code == 500
    assert "second factor cannot be checked: ask an administrator to re-enrol it" in right.text
    assert "Something went wrong" not in right.text
    [event] = logs
    assert event["event"] == "desk_second_factor_unreadable"
    assert (event["user"], event["users_file"]) == (USER, str(users.path))
    assert totp.secret not in str(logs)
    page = client.get("/", follow_redirects=False)  # and not signed in
    assert (page.status_code, page.headers["location"]) == (303, "/login")


def test_the_desk_warns_at_start_how_many_accounts_have_no_second_factor(
    make_client: Callable[..., tuple[TestClient, DeskDeps]], users: UserFile
) -> None:
    """Its pages show children's names and NHS numbers: a password alone is said at start."""
    users.add("sam.worker", "another long secret", totp=True)
    users.add("lee.lead", "yet another long secret")
    with capture_logs() as logs:
        make_client()
    [warning] = [e for e in logs if e["event"] == "desk_accounts_without_second_factor"]
    assert (warning["log_level"], warning["count"]) == ("warning", 2)  # lee.lead and USER
    assert "lee.lead" not in str(logs)
    assert USER not in str(logs)
