"""An account's credential stamp: what a signed-in session and a known-device cookie are
bound to, kept in the account's record of the users file (:class:`UserFile`).

The stamp is a random value of its own, set only when the credential is replaced: by
``add-user`` (new or ``--reset``) and by its owner's change of password. It was once a
fingerprint of the stored hash, and then an upgrade of the hash at a sign-in (Argon2's
parameters raised) changed it too: every other session of the account ended, told that an
administrator (or, worse, someone else) had changed the password (review r46a 2). A record an
older Accord wrote has no stamp: its hash's fingerprint stands for it, and is written as its
stamp at the next write of the record, whatever for, so that the upgrade changes nothing.

Who replaced each stamp (the administrator, the owner) is recorded at that moment, beside
the stamps it replaced (the newest few), so that a session of an old stamp is told what ended
it, not what last happened to the account: a reset by the administrator then a change by the
owner still reads, for a session the reset ended, as the administrator's.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

__all__ = ["ADMIN", "OWNER", "ended_by", "keep_stamp", "replace_stamp", "stamp_of"]

ADMIN = "admin"
OWNER = "owner"
#: The stamps replaced that are remembered: sessions live hours, credentials change seldom.
_KEPT = 8


def stamp_of(user: dict[str, Any]) -> str:
    """The record's stamp: its own, or (an older Accord's record) its hash's fingerprint."""
    stamp = user.get("stamp")
    if isinstance(stamp, str):
        return stamp
    return hashlib.sha256(user["hash"].encode()).hexdigest()[:32]


def keep_stamp(user: dict[str, Any]) -> None:
    """Write the record's stamp as its own before its hash changes for another reason."""
    user["stamp"] = stamp_of(user)


def replace_stamp(user: dict[str, Any], old: dict[str, Any] | None, by: str) -> str:
    """Give ``user`` a new stamp, ``old`` (the record it replaces, itself for a change in
    place; None: a new account) having been replaced ``by`` ``ADMIN`` or ``OWNER``."""
    ended: list[list[str]] = []
    if old is not None:
        ended = _ended_stamps(old)
        ended.append([stamp_of(old), by])
    user["ended_stamps"] = ended[-_KEPT:]
    user["stamp"] = secrets.token_hex(16)
    user.pop("changed_by_owner_at", None)  # what an earlier Accord inferred it from
    return str(user["stamp"])


def ended_by(user: dict[str, Any] | None, stamp: str | None) -> str | None:
    """Who replaced ``stamp`` in ``user``'s record (``ADMIN``, ``OWNER``; None: not known)."""
    if user is None or stamp is None:
        return None
    for entry in reversed(_ended_stamps(user)):
        if entry[0] == stamp:
            return str(entry[1])
    return None


def _ended_stamps(user: dict[str, Any]) -> list[list[str]]:
    """The record's replaced stamps, with who replaced each: what is not a list (``null``
    from a hand edit) as none, an entry not a pair of strings as absent. A TypeError here
    was a 500 at every request of the account's sessions and at ``add-user --reset``
    (review r46e 5)."""
    ended = user.get("ended_stamps")
    return [e for e in ended if _pair(e)] if isinstance(ended, list) else []


def _pair(entry: object) -> bool:
    return isinstance(entry, list) and len(entry) == 2 and all(isinstance(v, str) for v in entry)
