"""Console sign-in: a second factor, throttling that never locks an officer out, one answer."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pyotp
import pytest
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from broker.audit import AuditRecord
from broker.console import UserFile
from tests.unit.console.conftest import OFFICER, PASSWORD, Clock, csrf_of, sign_in

BASE = "http://127.0.0.1:8765"


@pytest.fixture
def totp(users: UserFile) -> pyotp.TOTP:
    """The officer's account, remade with a second factor."""
    users.add(OFFICER, PASSWORD, replace=True, totp=True)
    enrolment = users.totp_enrolment(OFFICER)
    assert enrolment is not None
    return pyotp.TOTP(enrolment.secret)


def from_address(client: TestClient, host: str) -> TestClient:
    """Another browser, at another address, on the same console."""
    return TestClient(client.app, base_url=BASE, client=(host, 40_000))


def attempt(
    client: TestClient, name: str = OFFICER, password: str = PASSWORD, code: str | None = None
) -> Any:  # the test client's response
    token = csrf_of(client.get("/login").text)
    form = {"username": name, "password": password, "csrf": token}
    if code is not None:
        form["code"] = code
    return client.post("/login", data=form, follow_redirects=False)


def hammer(client: TestClient, name: str = OFFICER, times: int = 60) -> None:
    """Wrong passwords for ``name`` from ``times`` addresses, each within its own budget
    (60: past the failures unknown clients may make at an account together, 50)."""
    for i in range(times):
        r = attempt(from_address(client, f"198.51.100.{i}"), name, "a wrong guess 123")
        assert r.status_code == 401


def siege(client: TestClient, clock: Clock, minutes: int = 15) -> None:
    """A wrong guess at the officer every 6 s for ``minutes``, from 30 addresses in turn."""
    bots = [from_address(client, f"198.51.100.{i}") for i in range(30)]
    tokens = [csrf_of(bot.get("/login").text) for bot in bots]
    for i in range(minutes * 10):
        clock.advance(seconds=6)
        form = {"username": OFFICER, "password": "a wrong guess", "csrf": tokens[i % 30]}
        assert bots[i % 30].post("/login", data=form).status_code == 401


def test_the_sign_in_form_offers_an_optional_one_time_code(client: TestClient) -> None:
    page = client.get("/login").text
    [field] = [line for line in page.splitlines() if 'name="code"' in line]
    assert 'inputmode="numeric"' in field
    assert 'autocomplete="one-time-code"' in field
    assert "required" not in field
    assert "<script" not in page


def test_a_second_factor_account_signs_in_with_its_code_and_each_code_works_once(
    client: TestClient, totp: pyotp.TOTP, clock: Clock
) -> None:
    assert attempt(client).status_code == 401  # no code
    token = sign_in(client, code=totp.at(clock.now))
    client.post("/logout", data={"csrf": token})
    assert attempt(client, code=totp.at(clock.now)).status_code == 401  # replayed
    clock.advance(seconds=30)
    sign_in(client, code=totp.at(clock.now))


def test_every_failure_is_the_same_page(client: TestClient, totp: pyotp.TOTP, clock: Clock) -> None:
    """Unknown name, wrong password, missing or wrong code, throttled: nothing to tell apart."""
    right = totp.at(clock.now)
    wrong = next(c for c in ("000000", "111111", "222222") if c != right)
    answers = [
        attempt(client, "ig.nobody", PASSWORD, right),
        attempt(client, OFFICER, "a wrong password", right),
        attempt(client, OFFICER, PASSWORD),
        attempt(client, OFFICER, PASSWORD, wrong),
    ]
    hammer(client)
    answers.append(attempt(client, OFFICER, PASSWORD, right))  # right, but throttled
    assert {r.status_code for r in answers} == {401}
    assert len({r.text for r in answers}) == 1
    assert "Sign-in failed" in answers[0].text


def test_hammering_an_officers_name_from_elsewhere_does_not_keep_them_out(
    client: TestClient, totp: pyotp.TOTP, clock: Clock
) -> None:
    laptop = from_address(client, "192.0.2.10")
    token = sign_in(laptop, code=totp.at(clock.now))  # once: the laptop is now a known device
    laptop.post("/logout", data={"csrf": token})
    siege(client, clock)
    code = totp.at(clock.now)
    assert attempt(from_address(client, "203.0.113.5"), code=code).status_code == 401
    sign_in(laptop, code=code)


def test_an_officer_on_a_new_browser_gets_in_once_the_wait_is_over(
    client: TestClient, clock: Clock
) -> None:
    """No lock: however long the siege, an unknown browser waits 5 minutes at most."""
    siege(client, clock, minutes=30)
    browser = from_address(client, "203.0.113.5")
    assert attempt(browser).status_code == 401
    clock.advance(minutes=5)
    sign_in(browser)


def test_one_client_trying_many_names_is_slowed_but_no_one_else(
    make_client: Callable[..., TestClient], indexed: list[AuditRecord]
) -> None:
    client = make_client(sign_in_failures_per_client=3)
    guesser = from_address(client, "203.0.113.66")
    for name in ("ig.a", "ig.b", "ig.c"):
        assert attempt(guesser, name, "a wrong guess 123").status_code == 401
    assert attempt(guesser).status_code == 401  # the right password, from the guesser
    sign_in(from_address(client, "192.0.2.10"))


def test_unknown_and_existing_names_are_throttled_alike(
    make_client: Callable[..., TestClient], indexed: list[AuditRecord]
) -> None:
    client = make_client(sign_in_failures_per_account=2, sign_in_failures_per_account_total=2)
    pages = []
    for name in (OFFICER, "ig.nobody"):
        hammer(client, name, times=2)
        with capture_logs() as logs:
            pages.append(attempt(from_address(client, "203.0.113.5"), name, PASSWORD).text)
        assert [e.get("throttled") for e in logs] == ["account"]
    strip = re.compile(r'name="csrf" value="[^"]+"')
    assert strip.sub("", pages[0]) == strip.sub("", pages[1])


def test_a_failed_sign_in_logs_neither_the_name_nor_the_address(client: TestClient) -> None:
    with capture_logs() as logs:
        attempt(from_address(client, "203.0.113.77"), "ig.typo", "a wrong password")
    assert [e["event"] for e in logs] == ["console_sign_in_failed"]
    assert "ig.typo" not in str(logs)
    assert "203.0.113" not in str(logs)


def test_the_known_device_cookie_is_httponly_strict_for_sign_in_only_and_lasts_90_days(
    make_client: Callable[..., TestClient], indexed: list[AuditRecord]
) -> None:
    for host, secure in (("127.0.0.1", False), ("0.0.0.0", True)):  # noqa: S104  # under test
        app = make_client(host=host, allowed_hosts=["127.0.0.1"]).app
        client = TestClient(app, base_url="https://127.0.0.1:8765")
        token = csrf_of(client.get("/login").text)
        r = client.post("/login", data={"username": OFFICER, "password": PASSWORD,
                                        "csrf": token}, follow_redirects=False)  # fmt: skip
        [cookie] = [
            c.lower() for c in r.headers.get_list("set-cookie") if "accord_console_device" in c
        ]
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        assert "path=/login" in cookie
        assert "max-age=7776000" in cookie  # 90 days
        assert ("; secure" in cookie) is secure
        assert cookie.startswith("__secure-") is secure  # Path=/login: __Host- would not do
        assert OFFICER not in cookie


def test_a_reset_password_forgets_the_accounts_known_devices(
    client: TestClient, users: UserFile
) -> None:
    laptop = from_address(client, "192.0.2.10")
    token = sign_in(laptop)
    laptop.post("/logout", data={"csrf": token})
    users.add(OFFICER, "a brand new passphrase", replace=True)
    hammer(client)
    assert attempt(laptop, password="a brand new passphrase").status_code == 401


def test_the_console_warns_at_start_how_many_accounts_have_no_second_factor(
    make_client: Callable[..., TestClient], users: UserFile, indexed: list[AuditRecord]
) -> None:
    users.add("ig.sam", "another long secret", totp=True)
    users.add("ig.kim", "yet another secret")
    with capture_logs() as logs:
        make_client()
    [warning] = [e for e in logs if e["event"] == "console_accounts_without_second_factor"]
    assert (warning["log_level"], warning["count"]) == ("warning", 2)
    assert OFFICER not in str(logs)
    assert "ig.kim" not in str(logs)


def test_a_second_factor_that_does_not_open_is_a_page_saying_so_after_the_right_password(
    client: TestClient, users: UserFile, totp: pyotp.TOTP, clock: Clock
) -> None:
    """Not a bare "Something went wrong": the officer is told to have the account re-enrolled
    and the log names the file and the account; a wrong password stays an ordinary refusal."""
    from broker.console import TotpBox
    from broker.crypto import random_bytes

    data = json.loads(users.path.read_text())
    elsewhere = TotpBox(random_bytes(32), "console").seal(OFFICER, totp.secret)
    data["users"][OFFICER]["totp"]["secret_sealed"] = elsewhere  # another keystore's
    users.path.write_text(json.dumps(data))
    with capture_logs() as logs:
        wrong = attempt(client, password="a wrong password!", code=totp.at(clock.now))
    assert wrong.status_code == 401
    assert "cannot be checked" not in wrong.text
    assert [e["event"] for e in logs] == ["console_sign_in_failed"]
    with capture_logs() as logs:
        right = attempt(client, code=totp.at(clock.now))
    assert right.status_code == 500
    assert "second factor cannot be checked: ask an administrator to re-enrol it" in right.text
    assert "Something went wrong" not in right.text
    [event] = logs
    assert event["event"] == "console_second_factor_unreadable"
    assert (event["user"], event["users_file"]) == (OFFICER, str(users.path))
    assert totp.secret not in str(logs)
    page = client.get("/subjects", follow_redirects=False)  # and not signed in
    assert (page.status_code, page.headers["location"]) == (303, "/login?next=%2Fsubjects")
