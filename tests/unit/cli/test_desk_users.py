"""``accord desk users --as PARTY`` and ``accord desk remove-user --as PARTY NAME``: a leaver's
desk account is listed, then removed, and a running desk lets its session go."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from broker.config import DeskSettings, SchoolCalendar
from broker.desk import DeskDeps, create_desk_app, open_desk_store
from broker.keys import FileKeyStore
from broker.webauth import TotpBox, UserFile
from tests.unit.audit.conftest import Run
from tests.unit.desk.conftest import DEVICE_KEY, SECRET, T0, Clock, FakeAcks, FakePublisher

PARTY = "cog-tipton"
PASSWORD = "a long enough secret"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    monkeypatch.setenv("ACCORD_KEYSTORE__PATH", str(tmp_path / "keys"))
    FileKeyStore(tmp_path / "keys", create=True)
    return tmp_path


def _add(run_cli: Run, monkeypatch: pytest.MonkeyPatch, name: str, *flags: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{PASSWORD}\n"))
    argv = ["desk", "add-user", "--as", PARTY, name, "--password-stdin", *flags]
    assert run_cli(argv)[0] == 0


def test_users_lists_a_party_s_accounts_and_their_second_factors(
    home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run_cli(["desk", "users", "--as", PARTY])
    users_file = home / "desk" / PARTY / "users.json"
    assert (code, out, err) == (0, f"no accounts in {users_file} (the file does not exist)\n", "")
    _add(run_cli, monkeypatch, "sam.okafor")
    _add(run_cli, monkeypatch, "kim.ward", "--no-totp")
    code, out, err = run_cli(["desk", "users", "--as", PARTY])
    assert (code, err) == (0, "")
    lines = [line.split("\t") for line in out.splitlines()]
    assert [(line[0], line[2]) for line in lines] == [
        ("kim.ward", "NO second factor"),
        ("sam.okafor", "second factor: TOTP"),
    ]
    assert "argon2" not in out


def test_remove_user_deletes_the_account_and_refuses_an_unknown_name_in_one_line(
    home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    _add(run_cli, monkeypatch, "sam.okafor", "--no-totp")
    _add(run_cli, monkeypatch, "kim.ward", "--no-totp")
    assert run_cli(["desk", "remove-user", "--as", PARTY, "sam.okafor"]) == (
        0, f"desk user sam.okafor of {PARTY} removed\n", "",
    )  # fmt: skip
    assert run_cli(["desk", "users", "--as", PARTY])[1].startswith("kim.ward\t")
    code, out, err = run_cli(["desk", "remove-user", "--as", PARTY, "sam.okafor"])
    assert (code, out, err) == (2, "", f"accord: error: no desk user sam.okafor of {PARTY}\n")


def test_remove_user_makes_no_secret_in_the_keystore(
    home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the console's: only enrolment makes the users-totp secret (a pod's keystore may live
    in memory, and a secret made there would be lost at the next restart)."""
    keys = FileKeyStore(home / "keys")
    code, _, err = run_cli(["desk", "remove-user", "--as", PARTY, "sam.okafor"])
    assert (code, err) == (2, f"accord: error: no desk user sam.okafor of {PARTY}\n")
    assert not TotpBox.from_keystore(keys, f"desk:{PARTY}", create=False).keyed


def test_a_removed_account_s_session_on_a_running_desk_ends_at_its_next_request(
    home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The desk reads the same users file at every request: the leaver's open session goes."""
    _add(run_cli, monkeypatch, "sam.okafor", "--no-totp")
    keys = FileKeyStore(home / "keys")
    users = UserFile(
        home / "desk" / PARTY / "users.json",
        box=TotpBox.from_keystore(keys, f"desk:{PARTY}", create=False),
    )
    store = open_desk_store(None, home=home, party=PARTY)
    deps = DeskDeps(
        party=PARTY, party_name="Tipton", kind="coordinating_team", store=store, users=users,
        acks=FakeAcks(), linkage_key=SECRET, device_key=DEVICE_KEY, settings=DeskSettings(),
        schools=SchoolCalendar(), publisher=FakePublisher(), clock=Clock(T0),
    )  # fmt: skip
    try:
        client = TestClient(create_desk_app(deps), base_url="http://127.0.0.1:8766")
        login = client.get("/login").text
        token = login.split('name="csrf" value="')[1].split('"')[0]
        signed_in = client.post(
            "/login", data={"username": "sam.okafor", "password": PASSWORD, "csrf": token},
            follow_redirects=False,
        )  # fmt: skip
        assert signed_in.status_code == 303
        assert client.get("/", follow_redirects=False).status_code == 200
        assert run_cli(["desk", "remove-user", "--as", PARTY, "sam.okafor"])[0] == 0
        after = client.get("/", follow_redirects=False)
        assert (after.status_code, after.headers["location"].split("?")[0]) == (303, "/login")
    finally:
        store.close()


@pytest.mark.parametrize(
    ("password", "why"),
    [("password123456", "too common"), ("sam.okafor.2026", "contains the account name")],
)
def test_add_user_refuses_a_guessable_password_in_one_line_never_echoing_it(
    home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch, password: str, why: str
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{password}\n"))
    argv = ["desk", "add-user", "--as", PARTY, "sam.okafor", "--password-stdin"]
    code, out, err = run_cli(argv)
    assert code != 0
    assert len(err.splitlines()) == 1
    assert err.startswith("accord: error: password: ")
    assert why in err
    assert password not in out + err
    assert "no accounts" in run_cli(["desk", "users", "--as", PARTY])[1]
