"""A console account whose name holds an NHS or telephone number (made before add-user refused
such names) is refused at sign-in, saying why, since its reviews would write the number into
the append-only log; no log line about it carries the name."""

from __future__ import annotations

import json
from collections.abc import Callable

import pyotp
import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from structlog.testing import capture_logs

from broker.audit import AuditRecord
from broker.console import UserFile
from broker.console._app import NAME_HOLDS_A_NUMBER
from broker.crypto import random_bytes
from broker.webauth import TotpBox
from tests.unit.console.conftest import PASSWORD, Clock, csrf_of

OLD_NAME = "9997672380"  # an NHS number from the test range


@pytest.fixture
def totp(users: UserFile, monkeypatch: pytest.MonkeyPatch) -> pyotp.TOTP:
    """An account named with an NHS number, as an older add-user made it."""
    with monkeypatch.context() as m:
        m.setattr("broker.webauth._users.check_username", lambda name: name)
        users.add(OLD_NAME, PASSWORD, totp=True)
    enrolment = users.totp_enrolment(OLD_NAME)
    assert enrolment is not None
    return pyotp.TOTP(enrolment.secret)


def _attempt(client: TestClient, code: str) -> object:
    token = csrf_of(client.get("/login").text)
    form = {"username": OLD_NAME, "password": PASSWORD, "code": code, "csrf": token}
    return client.post("/login", data=form, follow_redirects=False)


def test_an_account_named_with_an_nhs_number_is_refused_at_sign_in_naming_the_rule(
    make_client: Callable[..., TestClient],
    indexed: list[AuditRecord],
    totp: pyotp.TOTP,
    clock: Clock,
) -> None:
    client = make_client()
    with capture_logs() as logs:
        r = _attempt(client, totp.at(clock.now))
    assert r.status_code == 403  # type: ignore[attr-defined]  # the test client's response
    assert str(escape(NAME_HOLDS_A_NUMBER)) in r.text  # type: ignore[attr-defined]
    assert "console_sign_in_refused_name" in [e["event"] for e in logs]
    assert "console_sign_in" not in [e["event"] for e in logs]
    assert OLD_NAME not in str(logs)
    page = client.get("/subjects", follow_redirects=False)  # and not signed in
    assert page.status_code == 303
    assert page.headers["location"].startswith("/login")


def test_an_unreadable_second_factor_of_a_number_named_account_is_logged_without_the_name(
    make_client: Callable[..., TestClient],
    indexed: list[AuditRecord],
    users: UserFile,
    totp: pyotp.TOTP,
    clock: Clock,
) -> None:
    data = json.loads(users.path.read_text())
    elsewhere = TotpBox(random_bytes(32), "console").seal(OLD_NAME, totp.secret)
    data["users"][OLD_NAME]["totp"]["secret_sealed"] = elsewhere  # another keystore's
    users.path.write_text(json.dumps(data))
    with capture_logs() as logs:
        r = _attempt(make_client(), totp.at(clock.now))
    assert r.status_code == 500  # type: ignore[attr-defined]  # the test client's response
    [event] = [e for e in logs if e["event"] == "console_second_factor_unreadable"]
    assert event["event"] == "console_second_factor_unreadable"
    assert event["user"] == "(withheld: not a staff id)"
    assert OLD_NAME not in str(logs)
