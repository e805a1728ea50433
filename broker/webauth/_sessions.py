"""Console sessions: random server-side tokens, idle and absolute expiry, a CSRF token each.

A session lives only in the console process's memory: signing out, or restarting the console,
ends it, and there is nothing in the cookie worth stealing but a random id. Signing in
replaces the session (and its id) so an id planted before sign-in is worthless after it. The
store is bounded: the oldest sessions are dropped first.

Anonymous sessions exist only to carry the sign-in form's CSRF token, and anyone can ask for
one, so they are kept nowhere: the id is a nonce and its time, signed with a key this
process made, and the CSRF token is derived from it. A flood of sign-in forms therefore
evicts nothing, not even another visitor's form (a store of them would have: 1,000 requests
for /login made every pending sign-in fail). A form is good for the idle timeout.

A signed-in session that ends (idle, its lifetime over, its account reset or removed, signed
out) leaves a note of why under its id (:class:`Ended`, bounded as the sessions are), so that
the sign-in page the browser is sent to can say why, and the end is logged once: by then the
session itself is gone, and an id nobody knows reads as the app's restart. A signed-out id
came back (a copied cookie, replayed) as a restart's, with no user, and made a note at each
replay; it is noted at sign-out, among notes of its own (with the restart's of ids found
forgotten), so that an insider signing in and out over and over, replaying each cookie, evicts
no other session's note (review r46e 3).

A signed-in session's id is a nonce and its MAC under this process's key
(:meth:`SessionStore.issued`), so an id this process made is told from any other: a forged
one, or another process's (before a restart). Only the ones it made are ever noted: anyone
could send a cookie of the right length to any page, and each made a note (evicting real
ones: a reset officer's told "restart" instead) and a log line (review r46a 3).
"""

from __future__ import annotations

import base64
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from broker.webauth._flash import Flash

_MAX_SESSIONS = 5_000
ANONYMOUS = "a."  # the prefix of an anonymous session's id

# Why a signed-in session ended, as logged (``<app>_session_ended``) and as the sign-in page
# says it: idle too long, its lifetime over, its account's password reset (or its second factor
# re-enrolled) or the account removed by an administrator, its password changed by its owner
# (in another session: /account/password), signed out by its owner (the id used again after),
# or an id this process does not know (a restart; or one forgotten, the notes being bounded).
IDLE = "idle"
LIFETIME = "lifetime"
RESET = "reset"
REMOVED = "removed"
CHANGED_BY_OWNER = "password_changed"
SIGNED_OUT = "signed_out"
RESTART = "restart"


@dataclass(slots=True)
class Ended:
    """Why the session of an id ended, and whose it was (None: not known, a restart's)."""

    reason: str
    user: str | None
    logged: bool = False  # said in the log already: once, by the request that found it


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
    # The known-device id this browser was given with the session (Guard.set_device_cookie):
    # the page for a new password, which that cookie (kept for /login) does not reach, charges
    # its attempts to it as a sign-in would.
    device: str | None = None
    flash: list[Flash] = field(default_factory=list)

    def flash_success(self, text: str) -> None:
        """Say ``text`` on the next page as done (no personal data: it is kept till then)."""
        self.flash.append(Flash.success(text))

    def flash_error(self, text: str, *, field: str | None = None) -> None:
        """Say ``text`` on the next page as a problem, linked to the control ``field``."""
        self.flash.append(Flash.error(text, field=field))

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
        self._ended: OrderedDict[str, Ended] = OrderedDict()
        self._own: OrderedDict[str, Ended] = OrderedDict()  # signed out, restart: see above
        # Anonymous ids and signed-in ones: a restart forgets them, as all.
        self._key = secrets.token_bytes(32)

    def new(self, user: str | None = None, stamp: str | None = None) -> Session:
        now = self._clock()
        if user is None:
            return self._anonymous(secrets.token_urlsafe(16), now)
        if len(self._sessions) >= _MAX_SESSIONS:
            self._sweep(now)
        while len(self._sessions) >= _MAX_SESSIONS:
            # Insertion order: the oldest. No note: its browser is told what a restart's is.
            del self._sessions[next(iter(self._sessions))]
        nonce = secrets.token_urlsafe(32)
        session = Session(
            id=f"{nonce}.{self._mac('session', nonce)}",
            csrf=secrets.token_urlsafe(32),
            created_at=now,
            seen_at=now,
            user=user,
            stamp=stamp,
        )
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None, *, touch: bool = True) -> Session | None:
        """The live session with this id, or None when unknown or expired. ``touch``: its
        idle clock starts again (any request of the officer's); False only looks."""
        if not session_id:
            return None
        if session_id.startswith(ANONYMOUS):
            return self._anonymous_from(session_id)
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self._clock()
        if self._expired(session, now):
            self.end(session, self._why(session, now))
            return None
        if touch:
            session.seen_at = now
        return session

    @property
    def idle(self) -> timedelta:
        return self._idle

    def left(self, session: Session) -> tuple[timedelta, timedelta]:
        """How long ``session`` has until it ends if unused, and until its lifetime ends
        (which nothing extends)."""
        now = self._clock()
        return session.seen_at + self._idle - now, session.created_at + self._lifetime - now

    def sign_in(
        self, old: Session | None, user: str, stamp: str, *, ended: str | None = None
    ) -> Session:
        """A new session (and id) for ``user``, signed in with the credential ``stamp``, in
        place of ``old``; with ``ended``, a signed-in ``old`` is noted as ended so (its id,
        if it was stolen, then says why and whose when it comes back). ``ValueError`` without
        a stamp: a session holding None would match an account that is gone (review r46a 1)."""
        if stamp is None:
            raise ValueError("a signed-in session needs its account's stamp")
        if old is not None:
            self.end(old, ended)
        return self.new(user, stamp)

    def end(self, session: Session, reason: str | None = None) -> None:
        """Forget ``session``; with a ``reason``, note why under its id for :meth:`ended`."""
        self._sessions.pop(session.id, None)
        if reason is not None and session.user is not None:
            self.note(session.id, Ended(reason, session.user))

    def note(self, session_id: str, ended: Ended) -> Ended:
        """Keep ``ended`` as why ``session_id``'s session ended (the oldest notes go first; a
        sign-out's or a restart's only before another of those)."""
        notes = self._own if ended.reason in (SIGNED_OUT, RESTART) else self._ended
        notes[session_id] = ended
        notes.move_to_end(session_id)
        while len(notes) > _MAX_SESSIONS:
            notes.popitem(last=False)
        return ended

    def issued(self, session_id: str) -> bool:
        """Whether ``session_id`` is a signed-in session's id this process made (alive or
        not): a restart's new key disowns every earlier one."""
        nonce, dot, mac = session_id.partition(".")
        return (
            bool(dot)
            and not session_id.startswith(ANONYMOUS)
            and hmac.compare_digest(
                mac.encode("ascii", "replace"), self._mac("session", nonce).encode()
            )
        )

    def ended(self, session_id: str) -> Ended | None:
        """Why the signed-in session of ``session_id`` ended, if this process noted it."""
        return self._ended.get(session_id) or self._own.get(session_id)

    def _anonymous(self, nonce: str, now: datetime) -> Session:
        # The id carries its time and is made afresh at every request (the page sets it as
        # the cookie again), so a form is good for the idle timeout since it was last seen;
        # the CSRF token is the nonce's alone, so it outlives those refreshes.
        body = f"{nonce}.{int(now.timestamp())}"
        return Session(
            id=f"{ANONYMOUS}{body}.{self._mac('id', body)}",
            csrf=self._mac("csrf", nonce),
            created_at=now,
            seen_at=now,
        )

    def _anonymous_from(self, session_id: str) -> Session | None:
        parts = session_id.removeprefix(ANONYMOUS).split(".")
        if len(parts) != 3 or not (parts[1].isascii() and parts[1].isdigit()):  # nonce, time, mac
            return None
        nonce, seen, mac = parts
        if not hmac.compare_digest(mac.encode(), self._mac("id", f"{nonce}.{seen}").encode()):
            return None
        now = self._clock()
        if now - datetime.fromtimestamp(int(seen), UTC) >= self._idle:
            return None
        return self._anonymous(nonce, now)

    def _mac(self, purpose: str, body: str) -> str:
        digest = hmac.digest(self._key, f"{purpose}\x00{body}".encode(), "sha256")
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def _expired(self, session: Session, now: datetime) -> bool:
        return self._why(session, now) is not None

    def _why(self, session: Session, now: datetime) -> str | None:
        if now - session.created_at >= self._lifetime:
            return LIFETIME
        if now - session.seen_at >= self._idle:
            return IDLE
        return None

    def _sweep(self, now: datetime) -> None:
        for s in list(self._sessions.values()):
            if (why := self._why(s, now)) is not None:
                self.end(s, why)

    def __len__(self) -> int:
        return len(self._sessions)
