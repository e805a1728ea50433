"""Why a signed-in session ended, as the sign-in page says it, for the console as for a desk:
an account reset or removed by its administrator is said as such, never as idle or a
restart; an id nobody knows still reads as idle or a restart."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest
from starlette.requests import Request
from structlog.testing import capture_logs

from broker.config import SignInSettings
from broker.webauth import Guard, _sessions

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


def test_forged_session_cookies_are_counted_not_noted_and_said_once_a_minute(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Anyone can send a cookie of a session id's length to any page: each one made a note
    (evicting a real one, its reset officer then told 'restart') and a log line (r46a 3)."""
    monkeypatch.setattr(_sessions, "_MAX_SESSIONS", 100)
    users, clock = Stamps(), Clock()
    guard = _guard(users, clock)
    sid = _signed_in(guard)
    users.stamps["ig.officer"] = "s2"  # add-user --reset
    assert guard.session(_request(guard, sid)) is None
    forged = [secrets.token_urlsafe(32) for _ in range(100)]
    forged += [f"{secrets.token_urlsafe(32)}.{secrets.token_urlsafe(32)}" for _ in range(100)]
    with capture_logs() as logs:
        for cookie in forged:
            assert guard.session(_request(guard, cookie)) is None
            assert guard.ended(_request(guard, cookie)) == "restart"  # the page's generic words
    assert logs == [{"event": "console_session_cookies_unknown", "log_level": "info",
                     "count": 1}]  # fmt: skip
    assert guard.unknown_cookies == 200
    assert guard.ended(_request(guard, sid)) == "reset"  # the real note is kept
    clock.now += timedelta(minutes=1)
    with capture_logs() as logs:
        guard.session(_request(guard, forged[0]))
    assert logs == [{"event": "console_session_cookies_unknown", "log_level": "info",
                     "count": 200}]  # fmt: skip


def test_a_session_id_is_known_only_to_the_process_that_made_it() -> None:
    made, other = _guard(Stamps(), Clock()), _guard(Stamps(), Clock())
    sid = _signed_in(made)
    assert made.sessions.issued(sid)
    assert not other.sessions.issued(sid)  # a restart's new key
    assert not made.sessions.issued(sid[:-1] + ("A" if sid[-1] != "A" else "B"))
    assert not made.sessions.issued(sid.partition(".")[0])


def test_signing_out_notes_its_id_apart_and_evicts_no_other_note(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An insider signing in, out and replaying the cookie over and over made a note each
    time, evicting others' (a reset officer then told 'restart'): sign-outs are noted among
    their own, and a replay of one adds none (review r46e 3)."""
    monkeypatch.setattr(_sessions, "_MAX_SESSIONS", 100)
    users, clock = Stamps(), Clock()
    guard = _guard(users, clock)
    reset = _signed_in(guard)
    users.stamps["ig.officer"] = "s2"  # add-user --reset
    assert guard.session(_request(guard, reset)) is None
    users.stamps["ig.insider"] = "i1"
    out = []
    for _ in range(300):
        session = guard.sessions.new("ig.insider", "i1")
        guard.sign_out(session)
        out.append(session.id)
        assert guard.session(_request(guard, session.id)) is None  # the replay
        assert guard.ended(_request(guard, session.id)) == "signed_out"
    assert guard.ended(_request(guard, out[0])) == "restart"  # the oldest sign-outs' go
    for sid in out:  # replayed again, long forgotten: noted as a restart's, apart too
        assert guard.session(_request(guard, sid)) is None
    assert guard.ended(_request(guard, reset)) == "reset"  # the real note is kept
    assert "it was signed out" in guard.ended_message("signed_out")
