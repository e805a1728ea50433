"""The desk's party-local linkage secret, kept in the party's keystore.

Here, not in ``broker.desk``, so that ``accord keys init`` makes it on an install with the
SDK only (no web server, no stream processor): a recipient may enrol before its desk runs.

32 random bytes that key every child the desk and its flag service see (the two must key a
child identically), sealed under the keystore's passphrase as its private keys are. Never
leaves the party. One per party, ``desk-linkage-<h>.secret``, ``h`` the first 12 hex digits
of SHA-256 of the party's id (:func:`linkage_secret_name`; a party id may hold characters a
secret's name may not): two recipients' keystores on one host are one keystore (``Settings.
keystore_path``), and their desks must not key a child alike.

Only enrolment makes it (``accord keys init``, ``desk add-user``, the demo), as
``users-totp.secret``. A server (``accord desk``, ``accord desk flags``) only reads it, and
will not start without it: one it made would key children differently from the other
process, silently breaking every flag's link to its child, and in a pod whose keystore lives
in memory it would be gone at the next restart.

Older desks kept one secret per keystore, shared by every party whose keys it held: before
2026-12-05 a plain 0600 file, ``desk-linkage.key``, in the keystore's folder; then the sealed
``desk-linkage.secret``. The party's own name is looked up first, then that shared one (the
sealed one, else the file; the two must agree). Falling back is not ambiguous, though several
parties may reach it: every party whose keys the keystore held then keyed its children with
that very secret, so each must go on reading it for its children to keep their keys (giving
one of them a new secret would break its flags' links, and no choice between them is right).
Parties enrolled since never reach it: ``accord keys init`` makes a party's own secret in the
same run as its keys, a random one for a party whose keys are new to the keystore
(``new_party``: it cannot have keyed anything with the old one), and the shared bytes, under
the party's own name, for a party whose keys were there. ``accord keys init`` (``move``) also
seals the plain file into ``desk-linkage.secret``, the same bytes, and removes the file (it
stays the keystore's, for its other parties). ``add-user``, which may run in a pod whose
keystore is held in memory, moves nothing (the file would be lost with the pod), and the
servers read the older secret where it is.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from pathlib import Path
from typing import Final

from broker.errors import ConfigError, KeyNotFound, KeyStoreError
from broker.keys._store import FileKeyStore

__all__ = ["LINKAGE_FILE", "LINKAGE_SECRET", "desk_linkage_key", "linkage_secret_name"]

LINKAGE_FILE: Final = "desk-linkage.key"  # the plain file a keystore's desks shared before
# The sealed secret a keystore's desks shared from 2026-12-05; its parties' own names' stem.
LINKAGE_SECRET: Final = "desk-linkage"  # noqa: S105  # a name, not a secret
_SIZE: Final = 32


def linkage_secret_name(party: str) -> str:
    """The name of the keystore secret holding ``party``'s desk linkage secret."""
    return f"{LINKAGE_SECRET}-{hashlib.sha256(party.encode()).hexdigest()[:12]}"


def desk_linkage_key(
    keys: FileKeyStore,
    *,
    party: str,
    create: bool = False,
    move: bool = False,
    new_party: bool = False,
) -> bytes:
    """``party``'s desk linkage secret from its keystore ``keys``.

    A server (neither flag): the party's own secret; else the one the keystore's desks
    shared before (the sealed one, else the plain file, read as it is); else a
    ``ConfigError`` naming the keystore and the command that makes it. ``create``
    (``add-user``, the demo): the same, but a secret of the party's own is made when there
    is none to read; nothing else is written or removed. ``move`` (``accord keys init``;
    implies ``create``): the plain file is sealed into the keystore and removed, and the
    party's own secret is made, the shared one's bytes unless ``new_party`` (its keys are
    new to this keystore), else random. A party with a secret of its own gets it, and
    nothing is moved or compared.
    """
    name = linkage_secret_name(party)
    plain = keys.path / LINKAGE_FILE
    try:
        # A party with a secret of its own never reads the shared one, so neither moving
        # it nor a quarrel between its two copies is this party's to settle.
        return keys.local_secret(name, create=False)
    except KeyNotFound:
        pass
    if move:
        _seal_plain(keys, plain)
    shared = None if new_party else _shared(keys, plain)
    if move:
        return keys.local_secret(name, initial=shared)
    if shared is not None:
        return shared
    if create:
        return keys.local_secret(name)
    raise ConfigError(
        f"the keystore at {keys.path} has no desk linkage secret for {party}: make it once "
        f"with 'accord keys init --party {party}' (or 'accord desk add-user --as {party} NAME') "
        "where the keystore is kept, then start the desk and its flag service"
    )


def _shared(keys: FileKeyStore, plain: Path) -> bytes | None:
    """The secret the keystore's desks shared before, if it has one: sealed, else plain."""
    try:
        sealed = keys.local_secret(LINKAGE_SECRET, create=False)
    except KeyNotFound:
        return _read(plain) if plain.exists() else None
    if plain.exists() and _read(plain) != sealed:
        raise _two_ways(plain)
    return sealed


def _seal_plain(keys: FileKeyStore, plain: Path) -> None:
    """Move the plain file into the keystore as its shared sealed secret, the same bytes."""
    if not plain.exists():
        return
    _shared(keys, plain)  # refuses a file unlike the sealed secret
    keys.local_secret(LINKAGE_SECRET, initial=_read(plain))
    # Only once the keystore holds it: a crash before leaves the file to move again.
    plain.unlink(missing_ok=True)


def _two_ways(plain: Path) -> KeyStoreError:
    return KeyStoreError(
        f"{plain} and the keystore's {LINKAGE_SECRET}.secret hold different secrets: children "
        "would be keyed two ways; keep the one this desk's flags were raised under "
        "(docs/desk.md, Running it)"
    )


def _read(path: Path) -> bytes:
    for _ in range(50):
        data = path.read_bytes()
        if len(data) == _SIZE:
            if path.stat().st_mode & 0o077:
                raise KeyStoreError(f"{path}: readable by others; it must be mode 0600")
            return data
        if len(data) > _SIZE:
            break
        # An older desk created it a moment ago and is writing it.
        with contextlib.suppress(OSError):
            time.sleep(0.02)
    raise KeyStoreError(f"{path}: not a desk linkage key ({_SIZE} bytes expected)")
