"""Console sessions: random server-side tokens, idle and absolute expiry, a CSRF token each.

A session lives only in the console process's memory: signing out, or restarting the console,
ends it, and there is nothing in the cookie worth stealing but a random id. Anonymous sessions
exist only to carry the sign-in form's CSRF token; signing in replaces the session (and its
id) so an id planted before sign-in is worthless after it. The store is bounded: the oldest
sessions are dropped first.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

_MAX_SESSIONS = 5_000
_MAX_ANONYMOUS = 1_000  # sign-in forms: anyone can make these, so they never evict officers


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Session:
    id: str
    csrf: str
    created_at: datetime
    seen_at: datetime
    user: str | None = None
    stamp: str | None = None  # the credential the officer signed in with (UserFile.stamp)
    flash: list[str] = field(default_factory=list)

    def csrf_ok(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token.encode(), self.csrf.encode())


class SessionStore:
    def __init__(
        self, *, idle: timedelta, lifetime: timedelta, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self._idle = idle
        self._lifetime = lifetime
        self._clock = clock
        self._sessions: dict[str, Session] = {}

    def new(self, user: str | None = None, stamp: str | None = None) -> Session:
        now = self._clock()
        if user is None:
            anonymous = [sid for sid, s in self._sessions.items() if s.user is None]
            for sid in anonymous[: max(0, len(anonymous) - _MAX_ANONYMOUS + 1)]:
                del self._sessions[sid]  # insertion order: the oldest forms first
        if len(self._sessions) >= _MAX_SESSIONS:
            self._sweep(now)
        while len(self._sessions) >= _MAX_SESSIONS:
            del self._sessions[next(iter(self._sessions))]  # insertion order: the oldest
        session = Session(
            id=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            created_at=now,
            seen_at=now,
            user=user,
            stamp=stamp,
        )
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id (touched), or None when unknown or expired."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self._clock()
        if self._expired(session, now):
            del self._sessions[session_id]
            return None
        session.seen_at = now
        return session

    def sign_in(self, old: Session | None, user: str, stamp: str | None = None) -> Session:
        if old is not None:
            self._sessions.pop(old.id, None)
        return self.new(user, stamp)

    def end(self, session: Session) -> None:
        self._sessions.pop(session.id, None)

    def _expired(self, session: Session, now: datetime) -> bool:
        return now - session.seen_at >= self._idle or now - session.created_at >= self._lifetime

    def _sweep(self, now: datetime) -> None:
        for sid in [sid for sid, s in self._sessions.items() if self._expired(s, now)]:
            del self._sessions[sid]

    def __len__(self) -> int:
        return len(self._sessions)
