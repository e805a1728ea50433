"""SCRAM's salted password, worked out once per login rather than once per connection.

A SCRAM login (RFC 5802) starts from ``Hi(password, salt, i)``: PBKDF2 over the password with
the salt and iteration count the broker holds for that login. aiokafka works it out again
for every connection, and every connection of one login gets the same answer, because the
broker keeps one salt and one count per credential (Accord provisions 8,192 iterations of
SHA-512: about 13 ms of a core each time). A worker holds a transactional producer per input
partition, each with a connection to its partition's leader and one to its transaction
coordinator: 96 partitions made 199 logins, 2.6 s of PBKDF2, at every start, and again for
each partition a rebalance hands over.

:func:`remember_salted_passwords` has aiokafka's SCRAM logins keep each result, keyed by
everything it is computed from (the mechanism, the password, the salt and the count the
broker sent), so a login the broker re-salts, or another password, is computed afresh. The
rest of each exchange (a fresh nonce, the proofs, the check of the server's signature) is
unchanged, so nothing about what either side proves changes. What is kept is derived from a
password the process already holds in memory for every new connection.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import aiokafka.conn
from aiokafka.conn import ScramAuthenticator

__all__ = ["remember_salted_passwords"]

#: A process logs in as one principal, sometimes two (a test as the admin and a party):
#: a few entries, bounded all the same.
CAPACITY = 16

_Key = tuple[str, bytes, bytes, int]
_salted: OrderedDict[_Key, bytes] = OrderedDict()
# aiokafka runs each exchange's steps in the loop's executor: several threads at once.
_lock = threading.Lock()


class RememberingScram(ScramAuthenticator):  # type: ignore[misc]  # aiokafka is untyped
    """aiokafka's SCRAM exchange, its PBKDF2 step answered from what was worked out before."""

    def create_salted_password(self, salt: bytes, iterations: int) -> None:
        key = (self._hashname, self._sasl_plain_password, salt, iterations)
        with _lock:
            known = _salted.get(key)
            if known is not None:
                _salted.move_to_end(key)
        if known is not None:
            self._salted_password = known
            return
        super().create_salted_password(salt, iterations)
        with _lock:
            _salted[key] = self._salted_password
            while len(_salted) > CAPACITY:
                _salted.popitem(last=False)


def remember_salted_passwords() -> None:
    """Have every later aiokafka SCRAM login in this process reuse its salted password
    (aiokafka builds its authenticator by this module-level name; there is no option)."""
    aiokafka.conn.ScramAuthenticator = RememberingScram


def forget_salted_passwords() -> None:
    """Drop what was kept (tests; a process that changes its password logs in afresh anyway)."""
    with _lock:
        _salted.clear()
