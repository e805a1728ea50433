"""Whether a keystore still holds the signing key its party is known by.

A party's records verify only under a signing key the broker's directory lists. A keystore
made again (``accord keys init`` after the first was lost) signs with a key no directory
names, and every record it sends is refused on arrival, out of the sender's sight. Its own
copy of the directory shows it: that copy lists signing keys of the party, and the store
holds none of their private halves. Only then: a directory that does not list the party at
all is a first set-up (the party's keys are signed in after; docs/operations.md, Keys), and
a store holding any listed key, the old one during a rotation say, signs with that one.
"""

from __future__ import annotations

import time

from broker.envelope import KeyPurpose
from broker.keys._store import FileKeyStore

__all__ = ["lost_signing_keys", "lost_signing_keys_advice", "unheld_encryption_keys"]


def lost_signing_keys(store: FileKeyStore, party: str) -> list[str]:
    """The live signing keys of ``party`` that the last directory ``store`` took lists, when
    the store holds none of the listed ones; otherwise (nothing to fear) an empty list."""
    listed_own = store.listed_by_directory()
    if listed_own is None:  # no directory taken yet: nothing to compare with
        return []
    signing = [k for k in store.keys(party) if k.purpose is KeyPurpose.SIGN]
    if any(k.key_id in listed_own for k in signing):
        return []
    now = time.time()
    # Kept only because the directory lists them: the store holds no private half.
    return sorted(
        k.key_id for k in signing if not store.holds_private(k.key_id) and k.is_live_ts(now)
    )


def lost_signing_keys_advice(party: str) -> str:
    """What to say about ``lost_signing_keys``: one line naming the party and the fix."""
    return (
        f"this keystore holds none of the signing keys the key directory lists for {party}, "
        f"so the broker would refuse everything it signs: restore {party}'s keystore from its "
        "backup, not new keys (if the keys are truly lost, export this keystore's and have "
        "them signed into the directory, then import it)"
    )


def unheld_encryption_keys(store: FileKeyStore, party: str) -> list[str]:
    """The live encryption keys of ``party`` that ``store`` lists and holds no private half
    of: others seal to ``party``'s newest live one, and what is sealed to a key listed here
    only cannot be opened here. Empty when there is nothing to fear."""
    now = time.time()
    return sorted(
        k.key_id
        for k in store.keys(party)
        if k.purpose is KeyPurpose.ENCRYPT and k.is_live_ts(now)
        and not store.holds_private(k.key_id)
    )  # fmt: skip
