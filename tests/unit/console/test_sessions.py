"""Server-side sessions: expiry, id rotation at sign-in, CSRF comparison, a bounded store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from broker.webauth import _sessions
from broker.webauth._sessions import SessionStore

T = datetime(2026, 12, 1, 9, tzinfo=UTC)


def store(now: list[datetime]) -> SessionStore:
    return SessionStore(
        idle=timedelta(minutes=15), lifetime=timedelta(hours=8), clock=lambda: now[0]
    )


def test_activity_keeps_a_session_alive_until_its_absolute_lifetime() -> None:
    now = [T]
    s = store(now)
    session = s.new("ig.jo")
    for _ in range(8 * 6 - 1):
        now[0] += timedelta(minutes=10)
        assert s.get(session.id) is session
    now[0] += timedelta(minutes=10)
    assert s.get(session.id) is None


def test_an_idle_session_expires() -> None:
    now = [T]
    s = store(now)
    session = s.new("ig.jo")
    now[0] += timedelta(minutes=15)
    assert s.get(session.id) is None


def test_sign_in_issues_a_new_id_and_drops_the_old_one() -> None:
    s = store([T])
    anon = s.new()
    signed = s.sign_in(anon, "ig.jo")
    assert signed.id != anon.id
    assert signed.csrf != anon.csrf
    assert s.get(anon.id) is None
    assert s.get(signed.id) is signed


def test_csrf_tokens_compare_exactly() -> None:
    session = store([T]).new()
    assert session.csrf_ok(session.csrf)
    assert not session.csrf_ok(session.csrf[:-1])
    assert not session.csrf_ok(None)
    assert not session.csrf_ok("")


def test_the_store_is_bounded_and_drops_the_oldest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sessions, "_MAX_SESSIONS", 10)
    s = store([T])
    first = s.new()
    for _ in range(20):
        s.new()
    assert len(s) == 10
    assert s.get(first.id) is None


def test_a_flood_of_sign_in_forms_never_evicts_a_signed_in_officer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_sessions, "_MAX_ANONYMOUS", 5)
    s = store([T])
    officer = s.new("ig.jo")
    for _ in range(100):
        s.new()
    assert s.get(officer.id) is officer
    assert len(s) == 6
