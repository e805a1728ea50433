"""SCRAM's salted password, worked out once per login rather than once per connection.

A SCRAM login (RFC 5802) starts from ``Hi(password, salt, i)``: PBKDF2 over the password with
the salt and iteration count the broker holds for that login. aiokafka works it out again
for every connection, and every connection of one login gets the same answer, because the
broker keeps one salt and one count per credential (Accord provisions 8,192 iterations of
SHA-512: about 13 ms of a core each time). A worker holds a transactional producer per input
partition, each with a connection to its partition's leader and one to its transaction
coordinator: 96 partitions made 199 logins, 2.6 s of PBKDF2, at every start, and again for
each partition a rebalance hands over.

:func:`remember_salted_passwords` has aiokafka keep the result for the logins Accord's own
clients use (:class:`broker.kafka.KafkaClients` registers its password; a faust app given
the same login shares it). aiokafka builds its authenticator from a module-level name and has
no option for this, so the name is pointed at a subclass, once, when a secured client is
first configured, never at import. Logins Accord did not register (an agency's own clients
in a process that also publishes through the SDK) go through aiokafka's code untouched and
are kept nowhere. A result is keyed by everything it is computed from (the mechanism, a
digest of the password, the salt and the count the broker sent), so a login the broker
re-salts is worked out afresh. The rest of each exchange (a fresh nonce, the proofs, the
check of the server's signature) is aiokafka's, unchanged. For the logins it serves, a count
below Kafka's minimum of 4,096 is refused: only a broker that is not Kafka, or not the one
configured, would ask for a proof that cheap to attack offline; a count above Kafka's most,
16,384, would hold every other login waiting on the lock PBKDF2 runs under. The refusal is a
:class:`~broker.errors.TransportError`, which aiokafka does not catch: on a client's first
connection (its start) the command ends in one line saying so. On a later connection (a
node other than the bootstrap's, say) it ends the aiokafka task that opened it instead, and
that client stalls until a bound of Accord's gives up (a worker's commit, a send's timeout)
or, for a consumer without a group still starting, waits; no proof is sent either way. Only
something that is not Kafka, at an address a broker advertises, asks for such a count.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

import aiokafka.conn
import structlog

from broker.errors import TransportError

__all__ = ["remember_salted_passwords"]

log = structlog.get_logger(__name__)

#: Kafka's least and greatest iteration counts for a SCRAM credential (the least is RFC
#: 7677's too). Outside them the broker is not a Kafka of ours: a count too low asks for a
#: proof cheap to attack offline, one too high would hold every login waiting on ``_lock``.
MIN_ITERATIONS = 4096
MAX_ITERATIONS = 16384
#: A process logs in as one principal, sometimes a few (a test as the admin and parties).
CAPACITY = 16

_Key = tuple[str, bytes, bytes, int]
_ORIGINAL: Any = aiokafka.conn.ScramAuthenticator
_salted: OrderedDict[_Key, bytes] = OrderedDict()
_ours: set[bytes] = set()  # digests of the passwords Accord's clients log in with
_said: list[bool] = []  # the warning that another authenticator is in place, once
# aiokafka runs each exchange's steps in the loop's executor, several at once. Held while
# PBKDF2 runs, so that a dozen producers starting together work a login out once, not once
# per executor thread; a login of another credential waits that ~13 ms.
_lock = threading.Lock()


def _digest(password: bytes) -> bytes:
    return hashlib.sha256(password).digest()


class RememberingScram(_ORIGINAL):  # type: ignore[misc]  # aiokafka is untyped
    """aiokafka's SCRAM exchange, its PBKDF2 step answered from what was worked out before
    for a login Accord registered."""

    def create_salted_password(self, salt: bytes, iterations: int) -> None:
        hashname = getattr(self, "_hashname", None)
        password = getattr(self, "_sasl_plain_password", None)
        if not isinstance(hashname, str) or not isinstance(password, bytes):
            # aiokafka changed what this relies on: its own way, not a broken login.
            super().create_salted_password(salt, iterations)
            return
        digest = _digest(password)
        if digest not in _ours:
            super().create_salted_password(salt, iterations)
            return
        if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
            # Ends the client's start (aiokafka lets it through); the broker never sees a proof.
            raise TransportError(
                f"the broker asked for {iterations} SCRAM iterations, outside Kafka's "
                f"{MIN_ITERATIONS} to {MAX_ITERATIONS}: not logging in"
            )
        key = (hashname, digest, salt, iterations)
        with _lock:
            known = _salted.get(key)
            if known is not None:
                _salted.move_to_end(key)
                self._salted_password = known
                return
            super().create_salted_password(salt, iterations)
            # Kept only if aiokafka keeps it where this class would put it back: a cache hit
            # written where nothing reads it would make a wrong proof.
            made = getattr(self, "_salted_password", None)
            if isinstance(made, bytes):
                _salted[key] = made
                while len(_salted) > CAPACITY:
                    _salted.popitem(last=False)


def remember_salted_passwords(password: str) -> None:
    """Have later aiokafka SCRAM logins with ``password`` in this process reuse their salted
    password. If something else has replaced aiokafka's authenticator already, it is left in
    place (and said once): every login then works its password out as that code does."""
    current = aiokafka.conn.ScramAuthenticator
    if current is not RememberingScram:
        if current is not _ORIGINAL:
            if not _said:
                _said.append(True)
                log.warning("kafka_scram_authenticator_replaced", why="left as it is")
            return
        aiokafka.conn.ScramAuthenticator = RememberingScram
    with _lock:
        _ours.add(_digest(password.encode("utf-8")))


def forget_salted_passwords() -> None:
    """Drop what was kept and registered, and whether a replaced authenticator was said
    (tests)."""
    with _lock:
        _salted.clear()
        _ours.clear()
        _said.clear()
