"""A signed-in person changes their own password (/account/password, the console's too): the
current password and code, the new one twice under add-user's rules; the second factor kept,
every other session ended and told why, throttled as sign-in is, nothing typed logged or
drawn again."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pyotp
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from broker.desk import DeskDeps
from broker.webauth import UserFile
from tests.unit.desk.conftest import PASSWORD, USER, Clock, csrf_of, sign_in

NEW = "a different synthetic passphrase"
PAGE = "/account/password"


def change(client: TestClient, token: str | None = None, **fields: str) -> Any:
    form = {"current_password": PASSWORD, "new_password": NEW, "new_password_again": NEW}
    form |= fields
    form["csrf"] = token or csrf_of(client.get(PAGE).text)
    return client.post(PAGE, data=form, follow_redirects=False)


def beside(client: TestClient) -> TestClient:
    """Another browser at the same address, to the same desk process."""
    return TestClient(client.app, base_url=str(client.base_url))


def signs_in(client: TestClient, password: str, code: str = "") -> bool:
    token = csrf_of(client.get("/login").text)
    form = {"username": USER, "password": password, "code": code, "csrf": token}
    return client.post("/login", data=form, follow_redirects=False).status_code == 303


def test_signed_out_the_page_sends_to_sign_in_and_back(
    make_client: Callable[..., tuple[TestClient, DeskDeps]],
) -> None:
    client, _ = make_client()
    r = client.get(PAGE, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/login?next=%2Faccount%2Fpassword")


def test_the_password_changes_this_session_goes_on_and_another_ends_saying_why(
    make_client: Callable[..., tuple[TestClient, DeskDeps]], users: UserFile
) -> None:
    client, _ = make_client()
    other, _ = make_client()
    sign_in(other)
    sign_in(client)
    before = client.cookies.get("accord_desk_sandwell-coord_session")
    page = client.get(PAGE)
    assert page.status_code == 200
    assert 'autocomplete="new-password"' in page.text
    assert 'name="code"' not in page.text  # this account has no second factor
    with capture_logs() as logs:
        r = change(client)
    assert (r.status_code, r.headers["location"]) == (303, "/")
    assert client.cookies.get("accord_desk_sandwell-coord_session") != before  # a new id
    home = client.get("/")
    assert home.status_code == 200
    assert "Your password was changed." in home.text
    assert [e for e in logs if e["event"] == "desk_password_changed"] == [
        {"event": "desk_password_changed", "log_level": "info", "user": USER}
    ]
    assert PASSWORD not in json.dumps(logs)
    assert NEW not in json.dumps(logs)
    stored = json.loads(users.path.read_text())["users"][USER]
    assert stored["hash"].startswith("$argon2id$")
    r = other.get("/records", follow_redirects=False)
    assert r.headers["location"].startswith("/login")
    said = other.get(r.headers["location"]).text
    assert "Your session ended: your password was changed" in said
    assert "administrator changed your account" not in said
    fresh, _ = make_client()
    assert not signs_in(fresh, PASSWORD)
    assert signs_in(fresh, NEW)


def test_an_administrators_reset_afterwards_is_said_as_the_administrators_again(
    make_client: Callable[..., tuple[TestClient, DeskDeps]], users: UserFile
) -> None:
    client, _ = make_client()
    sign_in(client)
    assert change(client).status_code == 303
    client.get("/")
    users.add(USER, "yet another synthetic passphrase", replace=True)  # add-user --reset
    r = client.get("/records", follow_redirects=False)
    assert "your desk administrator changed your account" in client.get(r.headers["location"]).text


def test_refusals_are_drawn_again_with_their_error_and_nothing_typed(
    make_client: Callable[..., tuple[TestClient, DeskDeps]], users: UserFile
) -> None:
    client, _ = make_client()
    sign_in(client)
    stamp = users.stamp(USER)
    cases = [
        ({"current_password": "a wrong synthetic passphrase"}, "current password or code is wrong"),
        ({"new_password_again": NEW + " x"}, "not the same both times"),
        ({"new_password": "password123456", "new_password_again": "password123456"},
         "The new password is refused: too common"),
        ({"new_password": "short", "new_password_again": "short"},
         "The new password is refused: 12 to 1024 characters"),
        ({"new_password": PASSWORD, "new_password_again": PASSWORD}, "the one you have now"),
    ]  # fmt: skip
    for fields, said in cases:
        r = change(client, **fields)
        assert r.status_code == 400, fields
        assert said in r.text
        assert "There is a problem" in r.text
        for typed in (*fields.values(), PASSWORD, NEW):
            assert f'value="{typed}"' not in r.text
    assert users.stamp(USER) == stamp  # nothing changed
    r = client.post(PAGE, data={"csrf": "forged", "current_password": PASSWORD,
                                "new_password": NEW, "new_password_again": NEW})  # fmt: skip
    assert r.status_code == 403
    assert "Form from an earlier session" in r.text
    assert users.stamp(USER) == stamp
    assert client.get("/").status_code == 200  # still signed in, as before


def test_wrong_current_passwords_are_throttled_as_sign_ins_are(
    make_client: Callable[..., tuple[TestClient, DeskDeps]], users: UserFile, clock: Clock
) -> None:
    client, _ = make_client()
    sign_in(client)
    wrong = {"current_password": "a wrong synthetic passphrase"}
    with capture_logs() as logs:
        # Its own 5 as the known browser it is (it signed in), then the address's 5 at the
        # account, as a sign-in from it would have.
        answers = [change(client, **wrong).status_code for _ in range(11)]
        assert answers == [400] * 10 + [429]
        refused = change(client)  # the right one too, while the wait lasts
    assert refused.status_code == 429
    assert "Too many wrong attempts: wait up to 15 minutes" in refused.text
    failed = [e for e in logs if e["event"] == "desk_password_change_failed"]
    assert failed[0] == {"event": "desk_password_change_failed", "log_level": "warning",
                         "user": USER, "throttled": False}  # fmt: skip
    assert failed[-1]["throttled"] is True
    clock.advance(seconds=2)
    assert change(client).status_code == 303


def test_with_a_second_factor_a_current_code_is_needed_taken_and_the_factor_kept(
    make_client: Callable[..., tuple[TestClient, DeskDeps]], users: UserFile, clock: Clock
) -> None:
    users.add(USER, PASSWORD, replace=True, totp=True)
    enrolment = users.totp_enrolment(USER)
    assert enrolment is not None
    totp = pyotp.TOTP(enrolment.secret)
    client, _ = make_client()
    assert signs_in(client, PASSWORD, totp.at(clock()))
    assert 'name="code"' in client.get(PAGE).text
    assert change(client, code="").status_code == 400
    assert change(client, code=totp.at(clock())).status_code == 400  # taken by the sign-in
    clock.advance(seconds=30)
    assert change(client, code=totp.at(clock())).status_code == 303
    after = users.totp_enrolment(USER)
    assert after is not None
    assert after.secret == enrolment.secret
    clock.advance(seconds=30)
    fresh, _ = make_client()
    assert signs_in(fresh, NEW, totp.at(clock()))


def test_every_signed_in_page_links_to_the_password_page_marked_current_on_it(
    make_client: Callable[..., tuple[TestClient, DeskDeps]],
) -> None:
    """Without a link nobody finds the page: the header has one beside Sign out."""
    client, _ = make_client()
    assert 'id="change-password"' not in client.get("/login").text
    sign_in(client)
    home = client.get("/").text
    assert '<a href="/account/password" id="change-password">Change password</a>' in home
    assert 'id="change-password" aria-current="page"' in client.get(PAGE).text


def _then(users: UserFile, monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    """The administrator's ``change`` (remove-user, add-user --reset) lands the moment the
    write that signed in, or changed the password, lets go of the file's lock: before the
    session is made (review r46a 1)."""
    accept = UserFile._accept

    def then(self: UserFile, *args: Any, **kwargs: Any) -> Any:
        done = accept(self, *args, **kwargs)
        monkeypatch.setattr(UserFile, "_accept", accept)  # once
        if change == "remove":
            self.remove(USER)
        else:
            self.add(USER, "an administrators synthetic passphrase", replace=True)
        return done

    monkeypatch.setattr(UserFile, "_accept", then)


@pytest.mark.parametrize("change_by_admin", ["remove", "reset"])
def test_a_removal_or_reset_just_after_the_password_change_ends_the_session(
    make_client: Callable[..., tuple[TestClient, DeskDeps]],
    users: UserFile,
    monkeypatch: pytest.MonkeyPatch,
    change_by_admin: str,
) -> None:
    client, _ = make_client()
    sign_in(client)
    token = csrf_of(client.get(PAGE).text)
    _then(users, monkeypatch, change_by_admin)
    assert change(client, token).status_code == 303
    r = client.get("/", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/login")


@pytest.mark.parametrize("change_by_admin", ["remove", "reset"])
def test_a_removal_or_reset_just_after_a_sign_in_ends_the_session(
    make_client: Callable[..., tuple[TestClient, DeskDeps]],
    users: UserFile,
    monkeypatch: pytest.MonkeyPatch,
    change_by_admin: str,
) -> None:
    client, _ = make_client()
    token = csrf_of(client.get("/login").text)
    _then(users, monkeypatch, change_by_admin)
    form = {"username": USER, "password": PASSWORD, "csrf": token}
    assert client.post("/login", data=form, follow_redirects=False).status_code == 303
    r = client.get("/", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/login")


@pytest.mark.parametrize("older_file", [False, True])
def test_an_upgraded_hash_ends_no_other_session(
    make_client: Callable[..., tuple[TestClient, DeskDeps]],
    users: UserFile,
    monkeypatch: pytest.MonkeyPatch,
    older_file: bool,
) -> None:
    """Argon2's parameters raised: the next sign-in upgrades the hash, and the account's
    other sessions go on (they ended, told that the password had been changed: r46a 2).
    ``older_file``: a record an older Accord wrote, with no stamp of its own."""
    if older_file:
        data = json.loads(users.path.read_text())
        for record in data["users"].values():
            del record["stamp"], record["ended_stamps"]
        users.path.write_text(json.dumps(data))
    first, _ = make_client()
    sign_in(first)
    before = json.loads(users.path.read_text())["users"][USER]["hash"]
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=2, memory_cost=128))
    second, _ = make_client()
    sign_in(second)
    assert json.loads(users.path.read_text())["users"][USER]["hash"] != before  # upgraded
    assert first.get("/", follow_redirects=False).status_code == 200
    assert second.get("/", follow_redirects=False).status_code == 200


def test_a_session_the_administrators_reset_ended_is_told_so_after_the_owners_change_too(
    make_client: Callable[..., tuple[TestClient, DeskDeps]], users: UserFile
) -> None:
    """What ended the session is said, recorded when it happened: not the account's last
    change (the owner's, after the reset)."""
    old, _ = make_client()
    sign_in(old)
    given = "an administrators synthetic passphrase"
    users.add(USER, given, replace=True)  # add-user --reset
    owner, _ = make_client()
    assert signs_in(owner, given)
    assert change(owner, current_password=given).status_code == 303
    r = old.get("/records", follow_redirects=False)
    said = old.get(r.headers["location"]).text
    assert "your desk administrator changed your account" in said
    assert "your password was changed" not in said


def test_a_known_browser_is_not_held_by_its_addresss_spent_budget(
    make_client: Callable[..., tuple[TestClient, DeskDeps]],
) -> None:
    """Behind an office NAT others' failures spend the address's budget; the browser that
    signed in is known, and held by none of the address's budgets (docs/desk.md), here as at
    sign-in (review r46a 5)."""
    client, _ = make_client()
    sign_in(client)
    token = csrf_of(client.get(PAGE).text)
    others = beside(client)
    for n in range(10):  # other names (the address's budget is across every name)
        form = {"username": f"staff{n}", "password": "a wrong synthetic passphrase",
                "csrf": csrf_of(others.get("/login").text)}  # fmt: skip
        assert others.post("/login", data=form).status_code == 401
    refused = others.post("/login", data={"username": USER, "password": PASSWORD,
                                          "csrf": csrf_of(others.get("/login").text)})  # fmt: skip
    assert "too many failed attempts from this network address" in refused.text
    assert change(client, token).status_code == 303


def test_two_sessions_from_one_address_share_its_budget_at_the_account(
    make_client: Callable[..., tuple[TestClient, DeskDeps]],
) -> None:
    """Charged to the address and the account, not to the session: a second session (a
    second sign-in) is no fresh budget of guesses (review r46a 7)."""
    first, _ = make_client()
    second = beside(first)
    sign_in(first)
    sign_in(second)
    wrong = {"current_password": "a wrong synthetic passphrase"}
    # Each is a known browser with 5 of its own; past them, both draw on the same 5.
    assert [change(first, **wrong).status_code for _ in range(10)] == [400] * 10
    assert [change(second, **wrong).status_code for _ in range(6)] == [400] * 5 + [429]
