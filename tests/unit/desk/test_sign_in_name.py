"""An account whose name holds an NHS or telephone number (made before add-user refused such
names) is refused at sign-in, saying why, instead of shown a 503 on every page."""

from __future__ import annotations

import json
from collections.abc import Callable

import pyotp
import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from structlog.testing import capture_logs

from broker.crypto import random_bytes
from broker.desk import DeskDeps
from broker.desk._app import NAME_HOLDS_A_NUMBER
from broker.webauth import TotpBox, UserFile
from tests.unit.desk.conftest import PASSWORD, csrf_of

OLD_NAME = "9997672380"


def test_an_account_named_with_an_nhs_number_is_refused_at_sign_in_naming_the_rule(
    make_client: Callable[..., tuple[TestClient, DeskDeps]],
    users: UserFile,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with monkeypatch.context() as m:  # as an older add-user made it
        m.setattr("broker.webauth._users.check_username", lambda name: name)
        users.add(OLD_NAME, PASSWORD)
    client, _ = make_client()
    token = csrf_of(client.get("/login").text)
    r = client.post(
        "/login", data={"username": OLD_NAME, "password": PASSWORD, "csrf": token},
        follow_redirects=False,
    )  # fmt: skip
    assert r.status_code == 403
    assert "NHS or telephone number" in r.text
    assert str(escape(NAME_HOLDS_A_NUMBER)) in r.text
    logged = capsys.readouterr().out  # read once (review s43r5): the log line, without the name
    assert "desk_sign_in_refused_name" in logged
    assert OLD_NAME not in logged
    assert client.get("/", follow_redirects=False).status_code != 200  # not signed in


def test_an_unreadable_second_factor_of_a_number_named_account_is_logged_without_the_name(
    make_client: Callable[..., tuple[TestClient, DeskDeps]],
    users: UserFile,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with monkeypatch.context() as m:  # as an older add-user made it
        m.setattr("broker.webauth._users.check_username", lambda name: name)
        users.add(OLD_NAME, PASSWORD, totp=True)
    enrolment = users.totp_enrolment(OLD_NAME)
    assert enrolment is not None
    totp = pyotp.TOTP(enrolment.secret)
    data = json.loads(users.path.read_text())
    elsewhere = TotpBox(random_bytes(32), "desk:sandwell-coord").seal(OLD_NAME, totp.secret)
    data["users"][OLD_NAME]["totp"]["secret_sealed"] = elsewhere  # another keystore's
    users.path.write_text(json.dumps(data))
    client, _ = make_client()
    token = csrf_of(client.get("/login").text)
    form = {"username": OLD_NAME, "password": PASSWORD, "code": totp.now(), "csrf": token}
    with capture_logs() as logs:
        r = client.post("/login", data=form, follow_redirects=False)
    assert r.status_code == 500
    [event] = [e for e in logs if e["event"] == "desk_second_factor_unreadable"]
    assert event["user"] == "(withheld: not a staff id)"
    assert OLD_NAME not in str(logs)
