"""An account whose name holds an NHS or telephone number (made before add-user refused such
names) is refused at sign-in, saying why, instead of shown a 503 on every page."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape

from broker.desk import DeskDeps
from broker.desk._app import NAME_HOLDS_A_NUMBER
from broker.webauth import UserFile
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
