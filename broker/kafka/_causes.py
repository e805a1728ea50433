"""Why a Kafka connection failed, from what aiokafka logged while it tried.

aiokafka logs why each attempt to connect failed, then raises a bare "Unable to bootstrap"
(or, for a later request, ``NodeNotReadyError``), with no cause attached: while a
``translated()`` or ``connecting()`` block runs, its task keeps those causes here.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path

from aiokafka.errors import (
    AuthenticationFailedError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

#: How long a logged cause may explain a failure: a little over aiokafka's default request
#: timeout (40 s), the longest one attempt to connect waits before it is logged as failed
#: (the worker's group consumer waits 65 s, and a cause that old then goes unsaid). One
#: logged earlier was recovered from (a block may last as long as a service runs) and says
#: nothing about this failure.
CAUSES_FRESH_S = 45.0

#: How many of the latest causes a block keeps: enough for every broker of a bootstrap list.
_KEPT_AT_MOST = 32

#: What a cause may be: only these say more than "no connection"; any other exception
#: aiokafka logs is not kept, so it cannot push one of these out.
_CAUSES = (
    SaslAuthenticationFailed,
    AuthenticationFailedError,
    UnsupportedSaslMechanismError,
    ssl.SSLError,
)

_CLIENT_LOG = "aiokafka"  # aiokafka.client logs as "aiokafka"; its modules pass theirs up to it
_kept: ContextVar[_Kept | None] = ContextVar("accord_kafka_causes", default=None)
_lock = threading.Lock()
_active = 0
_saved = (logging.NOTSET, True)

# Replaced by tests that age a cause.
_now = time.monotonic


class _Kept:
    """Causes kept for one block, each with when it was logged; closed when the block ends
    (a task aiokafka started meanwhile has the same context, and must not add to it for
    ever)."""

    def __init__(self) -> None:
        self.causes: deque[tuple[float, BaseException]] = deque(maxlen=_KEPT_AT_MOST)
        self.open = True


class _Causes(logging.Handler):
    """Keeps the causes aiokafka's client logs for the block of the task that logs them,
    and passes every record on as aiokafka's own level allows (the CLI keeps it quiet; a
    long-running command shows warnings and worse)."""

    def __init__(self) -> None:
        super().__init__()
        self.threshold = logging.NOTSET
        self.propagates = True  # whether aiokafka's logger did, before the switch

    def emit(self, record: logging.LogRecord) -> None:
        kept = _kept.get()
        if kept is not None and kept.open and isinstance(record.args, tuple):
            at = _now()
            kept.causes.extend((at, a) for a in record.args if isinstance(a, _CAUSES))
        # Even while the logger still propagates (the switch half made or half undone, as
        # another thread logs): a record shown twice then is better than one lost.
        if record.levelno >= self.threshold and self.propagates:
            parent = logging.getLogger(_CLIENT_LOG).parent
            if parent is not None:
                parent.handle(record)


_handler = _Causes()


@contextlib.contextmanager
def keeping_causes() -> Iterator[_Kept]:
    """aiokafka's client logger, for the duration: at ERROR at least (so its connection
    errors are logged, and kept, even when the CLI has aiokafka at CRITICAL), through
    ``_handler`` only; as it was once the last block ends.

    Another thread may log meanwhile: at each step of the switch a record is passed on by
    ``_handler`` or propagated as before, never dropped (to ``logging``'s last resort,
    which prints it) nor shown below the level the application set. So the handler comes
    first and goes last, and the level is lowered last and restored first.
    """
    global _active, _saved  # noqa: PLW0603  # one logger, shared by every block
    logger = logging.getLogger(_CLIENT_LOG)
    with _lock:
        if _active == 0:
            _saved = (logger.level, logger.propagate)
            _handler.threshold = logger.getEffectiveLevel()
            _handler.propagates = logger.propagate
            logger.addHandler(_handler)
            logger.propagate = False
            logger.setLevel(min(logging.ERROR, _handler.threshold))
        _active += 1
    kept = _Kept()
    token = _kept.set(kept)
    try:
        yield kept
    finally:
        kept.open = False
        kept.causes.clear()
        # Ended from another context (an async generator finalised by the loop): not set there.
        with contextlib.suppress(ValueError):
            _kept.reset(token)
        with _lock:
            _active -= 1
            if _active == 0:
                logger.setLevel(_saved[0])
                logger.propagate = _saved[1]
                logger.removeHandler(_handler)


def refusal(kept: _Kept, principal: str | None, ca: Path | None, *, ca_known: bool) -> str | None:
    """What a failed connection means, from the latest cause logged for it (within
    ``CAUSES_FRESH_S``); None: nothing more than that Kafka could not be reached.
    ``ca_known``: whether ``ca`` is the CA file in use (None then: the system's trust
    store)."""
    since = _now() - CAUSES_FRESH_S
    latest = next((exc for at, exc in reversed(kept.causes) if at >= since), None)
    if latest is None:
        return None
    if isinstance(latest, SaslAuthenticationFailed | AuthenticationFailedError):
        return refused_login(principal)
    if isinstance(latest, UnsupportedSaslMechanismError):
        return "Kafka does not take SCRAM-SHA-512 logins on this port"
    if isinstance(latest, ssl.SSLCertVerificationError):
        if not ca_known:
            why = f" ({latest.verify_message})" if latest.verify_message else ""
            return f"TLS: the broker's certificate does not verify{why}"
        return unverified_certificate(ca, latest.verify_message)
    # Kept causes are no other kind: an ssl.SSLError.
    reason = getattr(latest, "reason", None) or type(latest).__name__
    return f"TLS: the handshake failed ({reason}; a TLS port?)"


def refused_login(principal: str | None) -> str:
    return f"Kafka refused the login{f' for {principal}' if principal else ''} (wrong password?)"


def unverified_certificate(ca: Path | None, because: str | None) -> str:
    against = ca if ca is not None else "the system's trust store"
    why = f" ({because})" if because else ""
    return f"TLS: the broker's certificate does not verify against {against}{why}"
