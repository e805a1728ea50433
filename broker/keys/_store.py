"""The local file keystore, Accord's default ``KeyStore``.

Layout of the keystore directory (0700; every file 0600, refused if others can read it)::

    keystore.json        format, and how private keys are protected (none | scrypt)
    directory.json       public key directory: every party's keys, ids, status, not_after;
                         and which of the store's own keys the last directory it took listed
    private/<id>.key     one private key each, raw bytes, AES-256-GCM-wrapped if protected
    linkage.key          the linkage key, where this store has it (the worker's, the console's)
    <name>.secret        a secret of the store's own (a desk's key for children: ``_secrets``)
    trust.json           the governance keys trusted to sign directories; the last serial;
                         in the governance keystore, what the last directory signed listed
    .lock                serialises mutations across processes

A store holds the private keys of the principals it was made for, and the public keys of
everyone else, imported from a signed directory (``_exchange``). Secrets are protected as
``_protect`` says.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import structlog
from pydantic import SecretStr

from broker.config import KemSuite
from broker.crypto import KemAlg, KemPrivateKey, SigningKey
from broker.envelope import (
    Clock,
    KeyAlg,
    KeyInfo,
    KeyPurpose,
    KeyStatus,
    SigningIdentity,
    compute_key_id,
    is_identifier,
)
from broker.errors import KeyNotFound, KeyStoreError, UsageError
from broker.keys._directory import entry_json, parse_entry
from broker.keys._files import check_private, locked, make_private_dir, read_json, write_private
from broker.keys._protect import Protector
from broker.keys._protocol import ALL_PURPOSES, DEFAULT_ROTATION_GRACE
from broker.keys._secrets import StoreSecrets, refuse_interrupted

__all__ = ["UNPROTECTED_WARNING", "FileKeyStore", "warn_if_unprotected"]

UNPROTECTED_WARNING: Final = (
    "private keys stored unencrypted (ACCORD_KEYSTORE__PROTECTION=none), for synthetic data "
    "only: 'accord keys protect' puts them under ACCORD_KEYSTORE__PASSPHRASE "
    "(docs/operations.md, Keys)"
)


def warn_if_unprotected(store: FileKeyStore) -> None:
    """A service starting on a keystore without a passphrase says so, as PLAINTEXT Kafka
    does: anyone who can read its folder holds its private keys."""
    if not store.protected:
        structlog.get_logger("accord.keys").warning(
            "keystore_unprotected", keystore=str(store.path), why=UNPROTECTED_WARNING
        )


_DIR_FORMAT: Final = "accord-keystore-directory/v1"
# Stores written before the signed directory existed named their file like it; still read.
_DIR_FORMATS: Final = (_DIR_FORMAT, "accord-key-directory/v1")
_KEY_FORMAT: Final = "accord-private-key/v1"
_WRAP_LABEL: Final = b"accord/private-key/v1\x00"
_REFRESH_SECONDS: Final = 1.0

_PrivateKey = SigningKey | KemPrivateKey
# Module constants: enum attribute access is slow on the per-record lookup paths.
_SIGN: Final = KeyPurpose.SIGN
_ENCRYPT: Final = KeyPurpose.ENCRYPT


class FileKeyStore(StoreSecrets):
    """A keystore in a local directory (``Settings.keys_dir`` by default), opened with its
    passphrase as a ``SecretStr`` or plain ``str`` (``None`` for one without)."""

    def __init__(
        self,
        path: Path,
        passphrase: SecretStr | str | None = None,
        *,
        create: bool = False,
        clock: Clock = time.time,
        scrypt_n: int = 2**15,
    ) -> None:
        if isinstance(passphrase, str):  # as a script writes it: wrapped before anything holds it
            passphrase = SecretStr(passphrase)
        elif passphrase is not None and not isinstance(passphrase, SecretStr):
            kind = type(passphrase).__name__  # the type only: the value is a secret
            raise UsageError(f"a keystore's passphrase is a str or pydantic.SecretStr, not {kind}")
        if passphrase is not None and not passphrase.get_secret_value().strip():
            # os.environ.get("PASS", "") would otherwise make (and open) a keystore no one
            # has to unlock; ACCORD_KEYSTORE__PASSPHRASE refuses an empty value for the same.
            raise UsageError(
                "a keystore's passphrase is empty: give one (None is a keystore without one)"
            )
        self.path = Path(path)
        self._clock = clock
        self._dir_file = self.path / "directory.json"
        self._private_dir = self.path / "private"
        meta_file = self.path / "keystore.json"
        if not meta_file.exists():
            refuse_interrupted(self.path.resolve().parent)
            if not create:
                raise KeyStoreError(_missing(self.path))
            self._initialise(meta_file, passphrase, scrypt_n)
        check_private(self.path)
        self._protect = Protector.unlock(read_json(meta_file), meta_file, self.path, passphrase)
        self._entries: list[KeyInfo] = []
        self._by_id: dict[str, KeyInfo] = {}
        self._newest: dict[tuple[str, KeyPurpose], KeyInfo] = {}
        # Own key ids the last signed directory this store took listed; None: it took none.
        self._listed: frozenset[str] | None = None
        self._listed_signers: dict[str, list[KeyInfo]] = {}
        self._identities: dict[str, SigningIdentity] = {}
        self._private: dict[str, _PrivateKey] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._checked_at = 0.0
        self._load()

    @property
    def protected(self) -> bool:
        """Whether the private keys on disk are encrypted under a passphrase."""
        return self._protect.protected

    # -- KeyResolver -------------------------------------------------------------------

    def public_key(self, key_id: str) -> KeyInfo | None:
        self._maybe_reload()
        return self._by_id.get(key_id)

    def current_signing_key(self, party: str) -> SigningIdentity:
        return self.signing_identity(self.signing_key(party))

    def signing_key(self, party: str) -> KeyInfo:
        """The key ``party`` signs with now (``KeyNotFound`` if it has no active one).

        Once this store has taken a signed directory: the newest live signing key of
        ``party`` that directory lists, so that whatever it signs verifies for everyone
        holding the same directory. A key made by a rotation since signs only once a
        directory naming it has been taken (it is not yet in anyone else's). With no such
        key (none taken yet, the party new since, or every listed key expired or revoked),
        the newest active key signs, as before any directory.
        """
        newest = self._current(party, _SIGN)
        listed = self._listed_signers.get(party)
        if listed:
            now = self._clock()
            for info in listed:
                if info.is_live_ts(now):
                    return info
        return newest

    def signing_identity(self, info: KeyInfo) -> SigningIdentity:
        """``info``'s private half, to sign with (``KeyNotFound`` if this store lacks it)."""
        ident = self._identities.get(info.key_id)
        if ident is None or ident.info is not info:
            key = self._load_private(info)
            if not isinstance(key, SigningKey):
                raise KeyNotFound(f"no usable signing key for party {info.party}")
            ident = self._identities[info.key_id] = SigningIdentity(info, key)
        return ident

    def current_encryption_key(self, party: str) -> KeyInfo:
        return self._current(party, _ENCRYPT)

    def decryption_key(self, key_id: str) -> KemPrivateKey | None:
        info = self.public_key(key_id)
        if info is None or info.purpose is not KeyPurpose.ENCRYPT:
            return None
        if not (self._private_dir / f"{key_id}.key").exists() and key_id not in self._private:
            return None
        key = self._load_private(info)
        return key if isinstance(key, KemPrivateKey) else None

    # -- KeyStore ----------------------------------------------------------------------

    def keys(self, party: str | None = None) -> list[KeyInfo]:
        self._maybe_reload()
        return [k for k in self._entries if party is None or k.party == party]

    def parties(self) -> list[str]:
        self._maybe_reload()
        return sorted({k.party for k in self._entries})

    def ensure_party(
        self,
        party: str,
        *,
        purposes: Sequence[KeyPurpose] = ALL_PURPOSES,
        kem: KemSuite = KemSuite.HYBRID,
        not_after: datetime | None = None,
    ) -> list[KeyInfo]:
        if not is_identifier(party):
            raise UsageError("party ids use letters, digits and . _ : - only (1-255 characters)")
        with locked(self.path):
            self._load()
            missing = [p for p in purposes if not self._active(party, p)]
            created = [self._generate(party, p, kem, not_after) for p in missing]
            self._save(self._entries + created)
        return created

    def rotate(
        self,
        party: str,
        *,
        purposes: Sequence[KeyPurpose] = ALL_PURPOSES,
        kem: KemSuite = KemSuite.HYBRID,
        grace: timedelta = DEFAULT_ROTATION_GRACE,
    ) -> list[KeyInfo]:
        now = self._now()
        with locked(self.path):
            self._load()
            if not any(k.party == party for k in self._entries):
                raise KeyNotFound(f"no keys for party {party}")
            if party not in self.private_parties():
                # Another party's new private keys would be made here, where they never
                # belong: once a directory lists them, that party's records would be sealed
                # to a key only this keystore can open.
                raise KeyStoreError(
                    f"this keystore holds no private key of {party}: rotate in {party}'s own"
                )
            held = {k.purpose for k in self._entries if k.party == party}
            wanted = [p for p in purposes if p in held]
            ends = now + grace
            entries = [
                replace(k, not_after=ends if k.not_after is None else min(k.not_after, ends))
                if k.party == party and k.purpose in wanted and k.status is KeyStatus.ACTIVE
                else k
                for k in self._entries
            ]
            created = [self._generate(party, p, kem, None) for p in wanted]
            self._save(entries + created)
        return created

    def holds_private(self, key_id: str) -> bool:
        """True when this store has the private half of ``key_id``."""
        return key_id in self._private or (self._private_dir / f"{key_id}.key").exists()

    def private_parties(self) -> list[str]:
        """The principals this store holds private keys for (whose keystore it is)."""
        self._maybe_reload()
        return sorted({k.party for k in self._entries if self.holds_private(k.key_id)})

    def replace_public(self, keys: Sequence[KeyInfo]) -> None:
        """Take ``keys`` (a signed directory) as everyone else's public keys.

        The directory is authoritative for every key it lists; keys this store holds
        privately stay, and of their directory entry and this store's own the stricter
        wins: the earlier ``not_after``, and a retirement or revocation made either side
        (so a directory taken again, the same serial re-imported nightly say, neither
        un-expires a key a rotation here has put on its grace nor un-revokes one). A key
        the directory dropped is forgotten, so nothing is sealed to it any more. Which of
        the store's own keys it lists is kept: those are the ones it signs with
        (:meth:`signing_key`).
        """
        with locked(self.path):
            self._load()
            listed = {k.key_id: k for k in keys}
            entries: list[KeyInfo] = []
            named: set[str] = set()
            for own in (k for k in self._entries if self.holds_private(k.key_id)):
                theirs = listed.pop(own.key_id, None)
                if theirs is not None:
                    named.add(own.key_id)
                entries.append(own if theirs is None else _stricter(own, theirs))
            self._listed = frozenset(named)
            self._save(entries + list(listed.values()))

    def refresh(self) -> None:
        """Read the directory file now, not up to a second late (a caller holding the lock
        that reads to write, so another process's change just before is not undone)."""
        self._load()

    def retire(self, key_id: str) -> KeyInfo:
        return self._set_status(key_id, KeyStatus.RETIRED)

    def revoke(self, key_id: str) -> KeyInfo:
        return self._set_status(key_id, KeyStatus.REVOKED)

    # -- internals ---------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def _active(self, party: str, purpose: KeyPurpose) -> list[KeyInfo]:
        return [
            k
            for k in self._entries
            if k.party == party and k.purpose is purpose and k.status is KeyStatus.ACTIVE
        ]

    def listed_by_directory(self) -> frozenset[str] | None:
        """The ids of this store's own keys that the last signed directory it took lists;
        None when it has taken none."""
        self._maybe_reload()
        return self._listed

    def _current(self, party: str, purpose: KeyPurpose) -> KeyInfo:
        self._maybe_reload()
        info = self._newest.get((party, purpose))
        if info is None:
            raise KeyNotFound(f"no active {purpose.value} key for party {party}")
        return info

    def _set_status(self, key_id: str, status: KeyStatus) -> KeyInfo:
        with locked(self.path):
            self._load()
            info = self._by_id.get(key_id)
            if info is None:
                raise KeyNotFound(f"no key with id {key_id}")
            if info.status is KeyStatus.REVOKED and status is not KeyStatus.REVOKED:
                raise UsageError(f"key {key_id} is revoked; a revoked key stays revoked")
            updated = replace(info, status=status, status_changed_at=self._now())
            self._save([updated if k.key_id == key_id else k for k in self._entries])
        self._private.pop(key_id, None)
        return updated

    def _generate(
        self, party: str, purpose: KeyPurpose, kem: KemSuite, not_after: datetime | None
    ) -> KeyInfo:
        key: _PrivateKey
        if purpose is KeyPurpose.SIGN:
            alg, key = KeyAlg.ED25519, SigningKey.generate()
        else:
            alg, key = KeyAlg(kem.value), KemPrivateKey.generate(KemAlg(kem.value))
        public = key.public_raw()
        info = KeyInfo(
            key_id=compute_key_id(alg, public),
            party=party,
            alg=alg,
            public=public,
            created_at=self._now(),
            not_after=not_after,
        )
        self._write_private(info, key.raw())
        self._private[info.key_id] = key
        return info

    # Private key files

    def _wrap_ad(self, info: KeyInfo) -> bytes:
        return _WRAP_LABEL + f"{info.key_id}\x00{info.party}\x00{info.alg.value}".encode()

    def _write_private(self, info: KeyInfo, raw: bytes) -> None:
        make_private_dir(self._private_dir)
        record: dict[str, Any] = {
            "format": _KEY_FORMAT,
            "key_id": info.key_id,
            "party": info.party,
            "alg": info.alg.value,
        }
        record |= self._protect.wrap(raw, self._wrap_ad(info))
        write_private(self._private_dir / f"{info.key_id}.key", record)

    def _load_private(self, info: KeyInfo) -> _PrivateKey:
        cached = self._private.get(info.key_id)
        if cached is not None:
            return cached
        path = self._private_dir / f"{info.key_id}.key"
        if not path.exists():
            raise KeyNotFound(f"this keystore does not hold the private key {info.key_id}")
        check_private(path)
        rec = read_json(path)
        if (rec.get("format"), rec.get("key_id"), rec.get("party"), rec.get("alg")) != (
            _KEY_FORMAT,
            info.key_id,
            info.party,
            info.alg.value,
        ):
            raise KeyStoreError(f"private key file {path} does not match the directory")
        raw = self._protect.unwrap(rec, self._wrap_ad(info), path)
        key: _PrivateKey = (
            SigningKey.from_raw(raw)
            if info.alg is KeyAlg.ED25519
            else KemPrivateKey(info.alg.kem, raw)
        )
        if key.public_raw() != info.public:
            raise KeyStoreError(f"private key file {path} does not match its public key")
        self._private[info.key_id] = key
        return key

    # Store metadata and passphrase

    def _initialise(self, meta_file: Path, passphrase: SecretStr | None, scrypt_n: int) -> None:
        make_private_dir(self.path)
        make_private_dir(self._private_dir)
        if not self._dir_file.exists():
            write_private(self._dir_file, {"format": _DIR_FORMAT, "keys": []})
        write_private(meta_file, Protector.new_meta(passphrase, scrypt_n))

    # Public directory

    def _maybe_reload(self) -> None:
        # Another process (``accord keys revoke``) may change the directory under a running
        # worker; look at most once a second so lookups stay cheap.
        now = time.monotonic()
        if now - self._checked_at < _REFRESH_SECONDS:
            return
        self._checked_at = now
        try:
            st = self._dir_file.stat()
        except FileNotFoundError as exc:
            raise KeyStoreError(f"keystore file missing: {self._dir_file}") from exc
        if (st.st_ino, st.st_mtime_ns, st.st_size) != self._stamp:
            self._load()

    def _load(self) -> None:
        st = self._dir_file.stat() if self._dir_file.exists() else None
        check_private(self._dir_file)
        data = read_json(self._dir_file)
        if data.get("format") not in _DIR_FORMATS or not isinstance(data.get("keys"), list):
            raise KeyStoreError(f"keystore file {self._dir_file} is not in the expected format")
        entries = [parse_entry(e, f"keystore file {self._dir_file}") for e in data["keys"]]
        listed = data.get("listed")
        if listed is not None and not (
            isinstance(listed, list) and all(isinstance(i, str) for i in listed)
        ):
            raise KeyStoreError(f"keystore file {self._dir_file} is not in the expected format")
        self._listed = None if listed is None else frozenset(listed)
        self._set_entries(entries)
        self._stamp = None if st is None else (st.st_ino, st.st_mtime_ns, st.st_size)
        self._checked_at = time.monotonic()

    def _set_entries(self, entries: list[KeyInfo]) -> None:
        by_id = {k.key_id: k for k in entries}
        if len(by_id) != len(entries):
            raise KeyStoreError(f"keystore file {self._dir_file} lists a key id twice")
        self._entries, self._by_id = entries, by_id
        # Newest active key per (party, purpose), by creation time (ties: the later entry). Not
        # by place in the file: an imported directory lists keys by id, which is random, so
        # after a rotation the rotated-out key would seal half the time, and once it expired
        # no one could seal to the party at all.
        newest: dict[tuple[str, KeyPurpose], KeyInfo] = {}
        for k in entries:
            if k.status is KeyStatus.ACTIVE:
                held = newest.get((k.party, k.purpose))
                if held is None or k.created_at >= held.created_at:
                    newest[(k.party, k.purpose)] = k
        self._newest = newest
        signers: dict[str, list[KeyInfo]] = {}
        if self._listed is not None:
            for k in entries:
                if k.key_id in self._listed and k.purpose is _SIGN and k.status is KeyStatus.ACTIVE:
                    signers.setdefault(k.party, []).append(k)
            for keys in signers.values():
                keys.sort(key=lambda k: k.created_at, reverse=True)
        self._listed_signers = signers

    def _save(self, entries: list[KeyInfo]) -> None:
        self._set_entries(entries)
        data: dict[str, Any] = {"format": _DIR_FORMAT, "keys": [entry_json(k) for k in entries]}
        if self._listed is not None:
            data["listed"] = sorted(self._listed)
        write_private(self._dir_file, data)
        st = self._dir_file.stat()
        self._stamp = (st.st_ino, st.st_mtime_ns, st.st_size)


def _missing(path: Path) -> str:
    """What to do about a keystore that is not there. Never 'keys init' for a whole bundle:
    on a host serving other organisations that would make every party's keys, and under
    this host's passphrase."""
    others = sorted(p.parent.name for p in path.glob("*/keystore.json"))
    if others:
        return (
            f"no keystore at {path}, a keys folder holding {', '.join(others)}'s, one per "
            f"principal: give the principal's own (--dir {path / 'PRINCIPAL'}); a missing one "
            "is restored from its backup, or, if it never had keys, made alone with 'accord "
            f"keys init --party PRINCIPAL --dir {path / 'PRINCIPAL'}'"
        )
    return (
        f"no keystore at {path}: if it is in another folder, name that folder with "
        "ACCORD_KEYSTORE__PATH; else restore it from its backup; only if it never had keys, "
        f"make them with 'accord keys init --party PARTY --dir {path}'"
    )


_FINALITY: Final = {KeyStatus.ACTIVE: 0, KeyStatus.RETIRED: 1, KeyStatus.REVOKED: 2}


def _stricter(own: KeyInfo, theirs: KeyInfo) -> KeyInfo:
    """A key of the store's own as a directory lists it, kept no looser than the store has
    it: the more final status, the earlier expiry."""
    ends = [t for t in (own.not_after, theirs.not_after) if t is not None]
    merged = theirs
    if _FINALITY[own.status] > _FINALITY[theirs.status]:
        merged = replace(merged, status=own.status, status_changed_at=own.status_changed_at)
    return replace(merged, not_after=min(ends) if ends else None)
