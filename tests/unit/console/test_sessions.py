"""Server-side sessions: expiry, id rotation at sign-in, CSRF comparison, a bounded store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

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


def test_sign_in_issues_a_new_id_and_the_old_one_signs_no_one_in() -> None:
    s = store([T])
    anon = s.new()
    signed = s.sign_in(anon, "ig.jo", "stamp")
    assert signed.id != anon.id
    assert signed.csrf != anon.csrf
    again = s.get(anon.id)  # still a sign-in form (kept nowhere), never the officer's session
    assert again is not None
    assert again.user is None
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
    first = s.new("ig.first")
    for i in range(20):
        s.new(f"ig.officer{i}")
    assert len(s) == 10
    assert s.get(first.id) is None


def test_a_flood_of_sign_in_forms_evicts_nothing_not_even_another_visitors_form() -> None:
    """1,000 requests for /login used to push every pending sign-in form out."""
    now = [T]
    s = store(now)
    officer, form = s.new("ig.jo"), s.new()
    for _ in range(5_000):
        s.new()
    assert s.get(officer.id) is officer
    held = s.get(form.id)
    assert held is not None
    assert held.csrf_ok(form.csrf)
    assert len(s) == 1  # the forms are kept nowhere


@pytest.mark.parametrize(
    "tamper",
    [lambda i: i[:-1] + ("A" if i[-1] != "A" else "B"), lambda i: i.replace(".", ".9", 1),
     lambda i: "a.x.²." + i.rsplit(".", 1)[1], lambda _: "a.nonsense"],
)  # fmt: skip
def test_an_anonymous_id_not_made_here_or_tampered_with_is_no_session(tamper: Any) -> None:
    s = store([T])
    assert s.get(tamper(s.new().id)) is None
    assert s.get(tamper(store([T]).new().id)) is None


def test_a_sign_in_form_expires_after_the_idle_timeout() -> None:
    now = [T]
    s = store(now)
    form = s.new()
    now[0] += timedelta(minutes=14)
    assert s.get(form.id) is not None
    now[0] += timedelta(minutes=1)
    assert s.get(form.id) is None
