"""Why a signed-in session ended, as the sign-in page says it, for the console as for a desk:
an account reset or removed by its administrator is said as such, never as idle or a
restart; an id nobody knows still reads as idle or a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.requests import Request

from broker.config import SignInSettings
from broker.webauth import Guard

T0 = datetime(2026, 12, 7, 12, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Stamps:
    """The part of UserFile a session's check reads: each account's current stamp."""

    def __init__(self) -> None:
        self.stamps: dict[str, str] = {"ig.officer": "s1"}

    def stamp(self, name: str) -> str | None:
        return self.stamps.get(name)

    def ended_by_owner(self, name: str, _stamp: str | None) -> bool:
        return name == "someone who changed their own password"


def _guard(users: Stamps, clock: Clock, app: str = "console") -> Guard:
    return Guard(
        SignInSettings(), users,  # type: ignore[arg-type]  # the part of UserFile it reads
        b"k" * 32, app=app, party=None if app == "console" else "cog-tipton", clock=clock,
    )  # fmt: skip


def _request(guard: Guard, session_id: str | None) -> Request:
    cookie = [] if session_id is None else [(b"cookie", f"{guard.cookie}={session_id}".encode())]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": cookie})


def _signed_in(guard: Guard) -> str:
    return guard.sessions.new("ig.officer", "s1").id


def test_a_reset_account_ends_its_session_and_says_the_administrator_changed_it() -> None:
    users, clock = Stamps(), Clock()
    guard = _guard(users, clock)
    sid = _signed_in(guard)
    users.stamps["ig.officer"] = "s2"  # add-user --reset
    assert guard.session(_request(guard, sid)) is None
    assert guard.ended(_request(guard, sid)) == "reset"
    said = guard.ended_message("reset")
    assert "your console administrator changed your account" in said
    assert "restarted" not in said


def test_a_removed_account_says_removed_and_the_desks_says_its_own_administrator() -> None:
    users, clock = Stamps(), Clock()
    guard = _guard(users, clock, app="desk")
    sid = _signed_in(guard)
    del users.stamps["ig.officer"]  # remove-user
    assert guard.ended(_request(guard, sid)) == "removed"
    assert "your desk administrator removed your account" in guard.ended_message("removed")


def test_idle_and_unknown_ids_still_read_as_idle_or_a_restart() -> None:
    users, clock = Stamps(), Clock()
    guard = _guard(users, clock)
    sid = _signed_in(guard)
    clock.now += timedelta(minutes=15)
    assert guard.ended(_request(guard, sid)) == "idle"
    assert guard.ended(_request(guard, "x" * 43)) == "restart"
    assert guard.ended(_request(guard, None)) is None
    for reason in ("idle", "restart"):
        assert "idle for 15 minutes, or the console restarted" in guard.ended_message(reason)
