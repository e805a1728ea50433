"""Exchanging public keys between organisations: export, sign a directory, import it.

Each party exports its own entries (``export_entries``); the governance officer merges the
entries into the master directory in the governance keystore and signs it
(``sign_directory``), with a serial one higher than the last; every keystore imports the
signed document (``import_directory``), which it accepts only when a trusted governance key
signed it and its serial is not older than the last it imported (the same one taken again
undoes nothing a rotation or revocation made in the store since). Trust starts with one key
id given on purpose (``trust=``, checked out of band, like an SSH host key's fingerprint);
later directories may introduce a new governance key, which is then trusted too, and revoke
an old one, which is then not.

The directory a store last took also decides which of its own signing keys signs
(``FileKeyStore.signing_key``): after a rotation, the old one, until a directory naming the
new one is taken.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from broker.config import KemSuite
from broker.envelope import KeyInfo, KeyPurpose, KeyStatus, SigningIdentity
from broker.errors import KeyNotFound, KeyStoreError, UsageError
from broker.keys._directory import SignedDirectory, parse_signed, signed_bytes
from broker.keys._entries import (
    EntriesDocument,
    check_possession,
    entries_bytes,
    parse_entries,
)
from broker.keys._files import locked, read_json, write_private
from broker.keys._merge import KeyChange, changes_since, check_parties, listing, merge_entries
from broker.keys._protocol import ALL_PURPOSES, SPECIAL_PRINCIPALS
from broker.keys._secrets import refuse_interrupted
from broker.keys._store import FileKeyStore
from broker.principals import Principal

__all__ = [
    "directory_signer",
    "export_entries",
    "import_directory",
    "imported_directory",
    "init_keystores",
    "keystores_under",
    "last_signed_serial",
    "listed_signer",
    "protect_keystores",
    "sign_directory",
    "trusted_signers",
]

_TRUST_FORMAT = "accord-keystore-trust/v1"
#: In trust.json: what the last directory signed here listed (ids, statuses, expiries).
_LAST_SIGNED = "last_signed"
_GOVERNANCE = str(Principal.GOVERNANCE)


def _trust(store: FileKeyStore) -> dict[str, Any]:
    path = store.path / "trust.json"
    if not path.exists():
        return {"format": _TRUST_FORMAT, "governance": [], "serial": 0}
    data = read_json(path)
    if data.get("format") != _TRUST_FORMAT:
        raise KeyStoreError(f"keystore file {path} is not in the expected format")
    return data


def _save_trust(store: FileKeyStore, data: dict[str, Any]) -> None:
    write_private(store.path / "trust.json", data)


def export_entries(store: FileKeyStore, party: str, *, now: datetime | None = None) -> bytes:
    """``party``'s public keys, from the keystore that holds them, as an entries document,
    signed by the key ``party`` signs with now (``FileKeyStore.signing_key``: after a
    rotation, the old one the directory lists, which is what ``sign-directory`` asks of a
    party already in it). Unsigned when the store holds no live signing key of ``party``."""
    keys = [k for k in store.keys(party) if store.holds_private(k.key_id)]
    if not keys:
        raise UsageError(f"the keystore at {store.path} holds no keys of {party}")
    return entries_bytes(party, keys, _entries_signer(store, party, now or datetime.now(UTC)))


def listed_signer(store: FileKeyStore, party: str, at: datetime) -> KeyInfo | None:
    """The newest signing key of ``party`` this store holds that the last directory it took
    lists as live (by the directory's own expiry, not the store's): what the master copy
    takes an export's signature from. A routine rotation merged after the store's local
    grace would otherwise be signed by the new key, which the master copy does not list,
    pushing the officer to --unsigned. None: no such key, or no record of one."""
    listed = _trust(store).get("own_signers")
    if not isinstance(listed, dict):
        return None  # taken before this was recorded, or no directory taken yet
    held = []
    for k in store.keys(party):
        if k.key_id not in listed or k.purpose is not KeyPurpose.SIGN:
            continue
        if k.status is not KeyStatus.ACTIVE or not store.holds_private(k.key_id):
            continue  # retired or revoked here: never used to sign again
        until = listed[k.key_id]
        if until is None or datetime.fromisoformat(str(until)) > at:
            held.append(k)
    return max(held, key=lambda k: k.created_at) if held else None


def _entries_signer(store: FileKeyStore, party: str, at: datetime) -> SigningIdentity | None:
    try:
        listed = listed_signer(store, party, at)
        if listed is not None:
            return store.signing_identity(listed)
        info = store.signing_key(party)
        if not info.is_live(at):
            return None
        return store.signing_identity(info)
    except KeyNotFound:
        return None  # none active, or its private half is lost: the officer decides


def trusted_signers(store: FileKeyStore, *, now: datetime | None = None) -> list[KeyInfo]:
    """The governance signing keys this store trusts to sign directories: pinned (or its
    own) and live, as the last directory accepted lists them. A key retired, or past the
    end of its rotation's grace, signs nothing more: whoever holds it since cannot hand
    out a directory of their own."""
    pinned = set(_trust(store)["governance"])
    at = now or datetime.now(UTC)
    return [
        k
        for k in store.keys(_GOVERNANCE)
        if k.purpose is KeyPurpose.SIGN and k.is_live(at)
        and (k.key_id in pinned or store.holds_private(k.key_id))
    ]  # fmt: skip


def directory_signer(store: FileKeyStore, *, now: datetime | None = None) -> KeyInfo | None:
    """The governance key ``sign_directory`` signs with in this store: the oldest live one it
    holds (``None``: it holds none live). During a rotation's grace that is the old key, so a
    directory it signs introduces the new one (every active governance key an accepted
    directory lists is trusted from then on), as schemas/key-directory.md §4 says; once the
    old key expires, the new one signs."""
    at = now or datetime.now(UTC)
    held = [
        k for k in store.keys(_GOVERNANCE)
        if k.purpose is KeyPurpose.SIGN and store.holds_private(k.key_id) and k.is_live(at)
    ]  # fmt: skip
    return min(held, key=lambda k: k.created_at) if held else None


def _directory_signer(store: FileKeyStore, now: datetime) -> SigningIdentity:
    """``directory_signer``'s key, to sign with; an error saying what to do when there is none."""
    own = [
        k for k in store.keys(_GOVERNANCE)
        if k.purpose is KeyPurpose.SIGN and store.holds_private(k.key_id)
    ]  # fmt: skip
    if not own:
        # Another party's keystore, given by mistake: the re-pin advice below is for a
        # governance keystore whose key has lapsed, and would alarm everyone for nothing.
        raise KeyStoreError(
            f"this keystore ({store.path}) holds no governance key: use the IG officer's (--dir)"
        )
    signer = directory_signer(store, now=now)
    if signer is None:
        raise KeyStoreError(
            "the governance keystore holds no live signing key (retired, revoked or past "
            "its expiry); give it a new one (accord keys rotate governance), then re-pin it "
            "in every keystore (accord keys import --trust)"
        )
    return store.signing_identity(signer)


def sign_directory(
    store: FileKeyStore,
    entry_files: list[tuple[str, bytes]],
    *,
    now: datetime | None = None,
    parties: Collection[str] | None = None,
    allow_second_key: bool = False,
    changes: list[KeyChange] | None = None,
    unsigned: Collection[str] = (),
    taken_unsigned: list[str] | None = None,
    dry_run: bool = False,
    publish: Callable[[bytes], None] | None = None,
) -> bytes:
    """Merge the parties' entries into the governance keystore's directory, then sign it all.

    What the merge refuses, and why, is ``merge_entries``'s (``parties``: the policy
    bundle's, to check each entry's party against). ``changes``, when given, receives what
    the signed directory adds or lists otherwise than the master copy did, for the officer
    to see what they signed.

    An entries document of a party the master copy already lists must be signed by one of
    that party's live signing keys there (``check_possession``), unless the officer names
    the party in ``unsigned`` (it lost every signing key, and was checked out of band);
    ``taken_unsigned`` receives the parties taken so, for the officer to be warned of.
    ``dry_run``: all of that checked and reported, nothing signed or written (returns b"").
    ``publish``, when given, writes the signed document out; the listing the next signing
    is compared with is recorded only once it returned, so a directory that never left
    this keystore is not what the next change list is against.
    """
    at = now or datetime.now(UTC)
    _directory_signer(store, at)  # no governance key here: said before the files are read
    documents = [parse_entries(data, where) for where, data in entry_files]
    incoming = [(doc.where, k) for doc in documents for k in doc.keys]
    # Held from the read of the master copy to its write: an `accord keys revoke` between
    # would otherwise be written over with the key still active (un-revoked), or sign with a
    # governance key the same document lists as revoked (review r45f).
    with locked(store.path):
        store.refresh()
        identity = _directory_signer(store, at)
        return _merge_and_sign(
            store, identity, documents, incoming, at=at, parties=parties,
            allow_second_key=allow_second_key, changes=changes, unsigned=unsigned,
            taken_unsigned=taken_unsigned, dry_run=dry_run, publish=publish,
        )  # fmt: skip


def _merge_and_sign(
    store: FileKeyStore,
    identity: SigningIdentity,
    documents: list[EntriesDocument],
    incoming: list[tuple[str, KeyInfo]],
    *,
    at: datetime,
    parties: Collection[str] | None,
    allow_second_key: bool,
    changes: list[KeyChange] | None,
    unsigned: Collection[str],
    taken_unsigned: list[str] | None,
    dry_run: bool,
    publish: Callable[[bytes], None] | None,
) -> bytes:
    known = store.keys(party=None)
    # What no file may hold, then who wrote each file, then the merge: a forged file must be
    # refused as such, not met with the merge's advice (--allow-second-key), which would
    # steer the officer to take it.
    check_parties(incoming, parties)
    taken = check_possession(documents, known, now=at, unsigned=unsigned)
    merged, changed = merge_entries(
        known, incoming, parties=parties, allow_second_key=allow_second_key
    )
    last = _trust(store).get(_LAST_SIGNED)
    if isinstance(last, dict) and isinstance(last.get("keys"), dict):
        # Against what the last directory said, not the master copy: a key revoked here
        # since (accord keys revoke --dir) is in both, and is what this one newly says.
        changed = changes_since(last["keys"], merged)
    if changes is not None:
        changes.extend(changed)
    if taken_unsigned is not None:
        taken_unsigned.extend(taken)
    if dry_run:
        return b""  # no serial used, the master copy as it was
    trust = _trust(store)
    serial = int(trust["serial"]) + 1
    trust["serial"] = serial
    _save_trust(store, trust)
    store.replace_public(merged)
    signed = store.keys()
    document = signed_bytes(
        signed, serial=serial, issued_at=at,
        signer=identity.info.key_id, sign=identity.key.sign,
    )  # fmt: skip
    if publish is not None:
        # Before the record: if writing it out fails, the next change list must still be
        # against the last directory published, or a revocation since would go unsaid.
        publish(document)
    trust[_LAST_SIGNED] = {"serial": serial, "keys": listing(signed)}
    _save_trust(store, trust)
    return document


def last_signed_serial(store: FileKeyStore) -> int | None:
    """The serial of the last directory signed in this (governance) keystore whose listing
    it keeps to compare the next with; None: none (the first, or all signed before Accord
    kept one), so ``sign_directory``'s changes are against the master copy only."""
    last = _trust(store).get(_LAST_SIGNED)
    return int(last["serial"]) if isinstance(last, dict) else None


def imported_directory(store: FileKeyStore) -> tuple[int, str | None]:
    """The serial of the last signed directory this store took (0: none yet) and the
    governance key that signed it (None when taken before the store kept it, 2026-12-08):
    what the worker's ``keys_loaded`` audit records name."""
    state = _trust(store)
    signer = state.get("signer")
    return int(state["serial"]), signer if isinstance(signer, str) else None


def import_directory(
    store: FileKeyStore,
    data: bytes,
    *,
    where: Path,
    trust: str | None = None,
    now: datetime | None = None,
) -> SignedDirectory:
    """Verify and take a signed directory; ``trust`` pins a governance key id first."""
    at = now or datetime.now(UTC)
    signed = parse_signed(data, where)
    state = _trust(store)
    candidates = list(trusted_signers(store, now=at))
    pinned_key = None
    if trust is not None:
        # Its status is read only once the signature proves the document: what an unverified
        # copy says about the key must not decide the answer (a tampered copy does not verify).
        pinned_key = next(
            (k for k in signed.keys
             if k.key_id == trust and k.party == _GOVERNANCE and k.purpose is KeyPurpose.SIGN),
            None,
        )  # fmt: skip
        if pinned_key is None:
            # Given, so not "give --trust": most often a mistyped or truncated key id, and
            # never ignored, as a pin the operator checked out of band must mean something.
            raise KeyStoreError(
                f"{where}: --trust {trust} names no governance signing key in this directory; "
                "check the key id out of band"
            )
        candidates.append(pinned_key)
    if not candidates:
        raise KeyStoreError(
            f"{where}: this keystore trusts no governance key yet; check the key id out of "
            "band and import with --trust KEY_ID"
        )
    trusted = sorted({k.key_id for k in candidates})
    named = signed.signer not in trusted and any(
        k.key_id == signed.signer and k.party == _GOVERNANCE and k.purpose is KeyPurpose.SIGN
        for k in signed.keys
    )
    if named and store.public_key(signed.signer) is None:
        # A governance key this store never saw: most often a rotation whose grace it missed
        # (schemas/key-directory.md §4), so the new key signs and nothing here introduced it.
        # Not tampering, and not a key it knows and stopped trusting (retired, expired).
        raise KeyStoreError(
            f"{where}: signed by governance key {signed.signer}, which this keystore does not "
            f"trust (it trusts {', '.join(trusted)}): check {signed.signer} with the IG "
            f"officer out of band, then import with --trust {signed.signer}"
        )
    if not signed.verify(candidates):
        raise KeyStoreError(f"{where}: the key directory's signature does not verify")
    if pinned_key is not None and not pinned_key.is_live(at) and signed.signer == trust:
        raise KeyStoreError(
            f"{where}: the governance key given with --trust is no longer live in this "
            "directory (retired, expired or revoked): check the current key id out of band"
        )
    if signed.serial < int(state["serial"]):
        raise KeyStoreError(
            f"{where}: directory {signed.serial} is older than the {state['serial']} imported"
        )
    store.replace_public(signed.keys)
    pinned = set(state["governance"]) | ({trust} if trust else set())
    pinned |= {
        k.key_id for k in signed.keys
        if k.party == _GOVERNANCE and k.purpose is KeyPurpose.SIGN and k.status is KeyStatus.ACTIVE
    }  # fmt: skip
    revoked = {k.key_id for k in signed.keys if k.status is KeyStatus.REVOKED}
    # The store's own signing keys as the directory lists them: its copy of them keeps the
    # stricter expiry (a local rotation's grace), which the master copy does not know of.
    own_signers = {
        k.key_id: None if k.not_after is None else k.not_after.astimezone(UTC).isoformat()
        for k in signed.keys
        if k.purpose is KeyPurpose.SIGN and k.status is KeyStatus.ACTIVE
        and store.holds_private(k.key_id)
    }  # fmt: skip
    state.update(
        governance=sorted(pinned - revoked), serial=signed.serial, own_signers=own_signers,
        signer=signed.signer,  # which directory the store holds, for the audit (keys_loaded)
    )  # fmt: skip
    _save_trust(store, state)
    return signed


def init_keystores(
    root: Path, parties: list[str], *, passphrase: SecretStr | None, kem: KemSuite
) -> str:
    """One keystore per principal under ``root``, wired with a signed directory.

    What separate organisations would each have: every party and the broker's principals
    hold their own private keys, and everyone imports the directory the governance keystore
    signs. The worker's and the console's stores share the linkage key (made once). Safe to
    run again: existing keys stay, new parties get keys, a new directory goes round; a run
    that fails removes the stores it made. Returns the governance signing key id, the trust
    anchor to check out of band.
    """
    refuse_interrupted(root)
    principals = [*parties, *SPECIAL_PRINCIPALS]
    new = [root / p for p in principals if not (root / p).exists()]
    signed_before = (root / "directory.json").exists()
    try:
        return _init_keystores(root, principals, passphrase, kem)
    except BaseException:
        # A store made by this run and left half-made (no keys, or no linkage key) would be
        # taken for a whole one by the next; stores that were there before stay as they are.
        for path in new:
            shutil.rmtree(path, ignore_errors=True)
        if not signed_before:
            (root / "directory.json").unlink(missing_ok=True)
        raise


def _init_keystores(
    root: Path, principals: list[str], passphrase: SecretStr | None, kem: KemSuite
) -> str:
    stores: dict[str, FileKeyStore] = {}
    for principal in principals:
        store = FileKeyStore(root / principal, passphrase, create=True)
        store.ensure_party(principal, purposes=SPECIAL_PRINCIPALS.get(principal, ALL_PURPOSES),
                           kem=kem)  # fmt: skip
        stores[principal] = store
    worker, console = stores[str(Principal.WORKER)], stores[str(Principal.CONSOLE)]
    try:
        linkage = worker.linkage_key()
    except KeyStoreError:
        linkage = worker.set_linkage_key()
    try:
        console.linkage_key()
    except KeyStoreError:
        console.set_linkage_key(linkage)
    governance = stores.pop(_GOVERNANCE)
    entries = [(f"{p} entries", export_entries(s, p)) for p, s in stores.items()]
    document = sign_directory(governance, entries)
    anchor = str(json.loads(document)["signature"]["key_id"])
    for principal, store in stores.items():
        import_directory(store, document, where=root / principal, trust=anchor)
    write_private(root / "directory.json", json.loads(document))
    return anchor


def keystores_under(root: Path) -> list[Path]:
    """The keystore at ``root``, or the ones under it (one per principal, as
    ``init_keystores`` makes them); never the folders an interrupted protect leaves."""
    root = root.resolve()
    if (root / "keystore.json").is_file():
        return [root]
    return sorted(
        p.parent for p in root.glob("*/keystore.json") if not p.parent.name.startswith(".")
    )


def protect_keystores(root: Path, passphrase: SecretStr) -> list[Path]:
    """Put the unprotected keystore at ``root``, or each one under it, under ``passphrase``;
    returns those it protected.

    Every store is opened before any is changed, so a store that is already protected but
    under another passphrase, or is unreadable, changes nothing; nor does a folder left by
    an interrupted protect, until someone has looked at it (docs/operations.md, Keys).
    """
    paths = keystores_under(root)
    if not paths:
        raise KeyStoreError(f"no keystore at {root}")
    refuse_interrupted(paths[0].parent)
    todo: list[FileKeyStore] = []
    for path in paths:
        unprotected = read_json(path / "keystore.json").get("protection") == "none"
        store = FileKeyStore(path, None if unprotected else passphrase)
        if unprotected:
            todo.append(store)
    for store in todo:
        store.protect(passphrase)
    return [store.path for store in todo]
