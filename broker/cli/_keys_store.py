"""What every ``accord keys`` command shares: the keystore it opens, and its keys as a table
or as JSON rows."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from broker.cli._keys_exchange import given_dir
from broker.errors import UsageError

if TYPE_CHECKING:
    from broker.envelope import KeyInfo
    from broker.keys import FileKeyStore

__all__ = ["DirOption", "key_row", "open_store", "print_table", "signing_ids"]

DirOption = Annotated[
    Path | None,
    typer.Option(
        "--dir", help="Keystore directory (default: <ACCORD_HOME>/keys).", show_default=False
    ),
]


def open_store(directory: Path | None, principal: str | None = None) -> FileKeyStore:
    """``--dir``; else ``principal``'s keystore; else the governance keystore, which holds the
    master directory (with one keystore for everything, that keystore)."""
    from broker.config import load_settings
    from broker.keys import FileKeyStore

    settings = load_settings()
    if directory is not None:
        path = given_dir(directory)
    else:
        path = settings.keystore_path(principal or "governance")
        root = settings.keys_dir
        if path == root and not (root / "keystore.json").exists() and (root / "worker").is_dir():
            raise UsageError(f"no keystore for {principal} in {root} (one per party)")
    return FileKeyStore(path, settings.keystore_passphrase())


def _status(info: KeyInfo) -> str:
    import time

    if info.status.value == "active" and not info.is_live_ts(time.time()):
        return "expired"
    return info.status.value


def signing_ids(store: FileKeyStore) -> set[str]:
    """The ids of the keys this store's own parties sign with now (``FileKeyStore.signing_key``:
    after a rotation, the old key until a directory naming the new one is imported). For
    governance, the key ``sign-directory`` signs with: the oldest live one, which during a
    rotation's grace is the old key, introducing the new one."""
    import contextlib

    from broker.errors import KeyNotFound
    from broker.keys import directory_signer
    from broker.principals import Principal

    ids = set()
    for party in store.private_parties():
        if party == Principal.GOVERNANCE:
            if (signer := directory_signer(store)) is not None:
                ids.add(signer.key_id)
            continue
        with contextlib.suppress(KeyNotFound):  # a party with no active signing key
            ids.add(store.signing_key(party).key_id)
    return ids


def key_row(info: KeyInfo, signing: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    return {
        "key_id": info.key_id,
        "party": info.party,
        "purpose": info.purpose.value,
        "alg": info.alg.value,
        "status": _status(info),
        "in_use": "signing" if info.key_id in signing else None,
        "created_at": info.created_at.isoformat(timespec="seconds"),
        "not_after": info.not_after.isoformat(timespec="seconds") if info.not_after else None,
    }


def print_table(infos: list[KeyInfo], store: FileKeyStore) -> None:
    signing = signing_ids(store)
    rows = [key_row(i, signing) for i in infos]
    cols = ("party", "purpose", "alg", "key_id", "status", "in_use", "not_after")
    widths = {c: max([len(c), *(len(str(r[c] or "-")) for r in rows)]) for c in cols}
    typer.echo("  ".join(c.upper().ljust(widths[c]) for c in cols).rstrip())
    for r in rows:
        typer.echo("  ".join(str(r[c] or "-").ljust(widths[c]) for c in cols).rstrip())
