"""A keystore's secrets other than key pairs, and sealing a store made without a passphrase.

- ``linkage.key``: the worker's and console's linkage key (``broker.linkage``), made once,
  on purpose (a new one would unlink every child's history).
- ``<name>.secret``: a secret of the store's own, made on first use by whichever process
  asks first (``local_secret``): a web app's ``users-totp`` key and each owner's
  ``device-cookie-<h>`` key (``broker.webauth``), each desk party's ``desk-linkage-<h>`` key
  for children (``broker.desk``; ``desk-linkage``, one a keystore's desks shared before
  2026-12-06, is still read). Only enrolment asks so; a server, for which a secret made now
  would be a lost one (in a pod whose keystore lives in memory), asks with ``create=False``.

Both are wrapped as the store's private keys are (``_protect``), each bound by associated
data to what it is. ``protect`` seals a store made unencrypted, all of it or nothing.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from pydantic import SecretStr

from broker.crypto import random_bytes
from broker.errors import KeyNotFound, KeyStoreError, UsageError
from broker.keys._files import check_private, locked, make_private_dir, read_json, write_private
from broker.keys._protect import Protector

if TYPE_CHECKING:
    from broker.envelope import KeyInfo

__all__ = ["StoreSecrets", "leftovers", "refuse_interrupted"]

_LINKAGE_FORMAT: Final = "accord-linkage-key/v1"
_LINKAGE_AD: Final = b"accord/linkage-key/v1"
_SECRET_FORMAT: Final = "accord-local-secret/v1"  # noqa: S105  # a format name
_SECRET_AD: Final = b"accord/local-secret/v1\x00"
_SECRET_NAME: Final = re.compile(r"[a-z][a-z0-9-]{0,40}\Z")
_SIZE: Final = 32
# The plain file a keystore's desks kept their linkage secret in before 2026-12-05
# (``broker.desk``), and the name the shared secret has in the store since: sealing a store
# moves it in.
_OLD_DESK_FILE: Final = "desk-linkage.key"
_OLD_DESK_SECRET: Final = "desk-linkage"  # noqa: S105  # a name, not a secret


class StoreSecrets:
    """Part of ``FileKeyStore``: what it needs of the store is declared here."""

    path: Path
    _protect: Protector
    _private_dir: Path
    _by_id: dict[str, KeyInfo]

    def _wrap_ad(self, info: KeyInfo) -> bytes:
        raise NotImplementedError

    # -- the linkage key ---------------------------------------------------------------

    def linkage_key(self) -> bytes:
        """The secret behind subject keys (``broker.linkage``): made once, on purpose."""
        path = self.path / "linkage.key"
        if not path.exists():
            raise KeyStoreError(
                f"no linkage key in the keystore at {self.path}: make it once with 'accord keys "
                "linkage create' (a new one would unlink every child's history)"
            )
        check_private(path)
        record = read_json(path)
        if record.get("format") != _LINKAGE_FORMAT:
            raise KeyStoreError(f"linkage key file {path} is not in the expected format")
        key = self._protect.unwrap(record, _LINKAGE_AD, path)
        if len(key) != _SIZE:
            raise KeyStoreError(f"the linkage key at {path} is not 32 bytes")
        return key

    def set_linkage_key(self, key: bytes | None = None) -> bytes:
        """Store ``key`` (a new random one when None) as this store's linkage key; refuse to
        replace one it has."""
        path = self.path / "linkage.key"
        if path.exists():
            raise UsageError(f"the keystore at {self.path} has a linkage key already")
        key = random_bytes(_SIZE) if key is None else key
        if len(key) != _SIZE:
            raise UsageError("a linkage key is 32 bytes")
        write_private(path, {"format": _LINKAGE_FORMAT, **self._protect.wrap(key, _LINKAGE_AD)})
        return key

    # -- a store's own secrets ------------------------------------------------------------

    def has_secret(self, name: str) -> bool:
        """Whether the store holds its secret ``name``, read without opening it."""
        if not _SECRET_NAME.match(name):
            raise UsageError("a secret's name uses lower-case letters, digits and -")
        return (self.path / f"{name}.secret").exists()

    def local_secret(
        self, name: str, *, initial: bytes | None = None, create: bool = True
    ) -> bytes:
        """The store's 32-byte secret ``name``, made on first use (``initial``, else random);
        with ``create=False``, ``KeyNotFound`` when the store has none.

        Two processes asking at once agree on one: each writes its own file and links it
        into place, and the one that finds a secret there already takes that. ``initial``
        (a secret kept elsewhere before, being moved in) must then equal it.
        """
        if not _SECRET_NAME.match(name):
            raise UsageError("a secret's name uses lower-case letters, digits and -")
        path = self.path / f"{name}.secret"
        ad = _SECRET_AD + name.encode()
        if not create and not path.exists():
            raise KeyNotFound(f"the keystore at {self.path} has no secret {name}")
        if not path.exists():
            value = random_bytes(_SIZE) if initial is None else initial
            if len(value) != _SIZE:
                raise UsageError("a store's secret is 32 bytes")
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            write_private(
                tmp, {"format": _SECRET_FORMAT, "name": name, **self._protect.wrap(value, ad)}
            )
            try:
                os.link(tmp, path)  # never replaces: the first to link wins
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        check_private(path)
        record = read_json(path)
        if record.get("format") != _SECRET_FORMAT or record.get("name") != name:
            raise KeyStoreError(f"secret file {path} is not in the expected format")
        value = self._protect.unwrap(record, ad, path)
        if len(value) != _SIZE or (initial is not None and value != initial):
            raise KeyStoreError(f"secret file {path} does not hold the secret expected")
        return value

    # -- protecting a store made without a passphrase ----------------------------------

    def protect(self, passphrase: SecretStr, *, scrypt_n: int = 2**15) -> None:
        """Encrypt this unprotected store's private keys and secrets under ``passphrase``.

        The sealed store is written in a folder beside it (0700; no secret is ever copied
        there unsealed) and swapped in by two renames, each step on disk before the next, so
        a crash leaves the old store or the new one whole at its path, or (between the
        renames) both beside it: docs/operations.md says how to finish by hand. Services
        using the store must be stopped first: they hold the old protection. The unencrypted
        files are deleted, not wiped: a disk may keep their blocks, so keys that guarded real
        data are rotated afterwards.
        """
        if self._protect.protected:
            raise UsageError(f"the keystore at {self.path} is passphrase-protected already")
        real = self.path.resolve()  # a link to the store: seal the store, not the link
        staging, old = leftovers(real)
        with locked(real):
            refuse_interrupted(real.parent)
            make_private_dir(staging)
            try:
                new = self._protect_copy(real, staging, passphrase, scrypt_n)
                _sync_tree(staging)
            except BaseException:
                shutil.rmtree(staging)  # nothing was changed yet: leave only the old store
                raise
            real.rename(old)
            staging.rename(real)
            _sync_dir(real.parent)
        shutil.rmtree(old)
        self._protect = new

    def _protect_copy(
        self, real: Path, staging: Path, passphrase: SecretStr, scrypt_n: int
    ) -> Protector:
        meta_file = staging / "keystore.json"
        meta = Protector.new_meta(passphrase, scrypt_n)
        new = Protector.unlock(meta, meta_file, self.path, passphrase)
        # Everything but the secrets, as it is (not the lock, nor a write under way); the
        # secrets below, sealed from birth.
        for item in real.iterdir():
            name = item.name
            if (
                name in (".lock", "private", "keystore.json")
                or name.endswith((".key", ".secret"))
                or (name.startswith(".") and name.endswith(".tmp"))
            ):
                continue
            if item.is_dir():
                raise KeyStoreError(f"{item}: a folder a keystore does not have")
            shutil.copy2(item, staging / item.name)
        make_private_dir(staging / "private")
        for path in sorted(self._private_dir.glob("*")):
            info = self._by_id.get(path.name.removesuffix(".key"))
            if info is None or not path.name.endswith(".key"):
                # Copied as it is, it would stay readable in the new store.
                raise KeyStoreError(f"private key file {path} is not in the directory")
            record = read_json(path)
            raw = self._protect.unwrap(record, self._wrap_ad(info), path)
            record |= new.wrap(raw, self._wrap_ad(info))
            write_private(staging / "private" / path.name, record)
        for path in sorted(real.glob("*.key")):
            if path.name == "linkage.key":
                record = {"format": _LINKAGE_FORMAT, **new.wrap(self.linkage_key(), _LINKAGE_AD)}
                write_private(staging / path.name, record)
            elif path.name == _OLD_DESK_FILE:  # an older desk's plain secret: sealed, moved in
                _seal_secret(staging, new, _OLD_DESK_SECRET, _read_plain(path))
            else:
                raise KeyStoreError(f"{path}: a key file a keystore does not have")
        for path in sorted(real.glob("*.secret")):
            name = path.name.removesuffix(".secret")
            _seal_secret(staging, new, name, self.local_secret(name))
        write_private(meta_file, meta)  # last: the copy says "protected" only once it is
        return new


def leftovers(store: Path) -> tuple[Path, Path]:
    """The folders an interrupted ``protect`` of ``store`` leaves: the sealed copy, the old."""
    return (
        store.with_name(f".{store.name}.protecting"),
        store.with_name(f".{store.name}.unprotected"),
    )


def refuse_interrupted(folder: Path) -> None:
    """``KeyStoreError`` naming a folder an interrupted ``protect`` left in ``folder``.

    Between its two renames a store's own folder is missing: a command that then made a
    store in its place would make new keys and a new linkage key (unlinking every child's
    history), and the recovery the docs give would delete the only copies of the old ones.
    """
    if not folder.is_dir():
        return
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") and path.name.endswith((".protecting", ".unprotected")):
            raise KeyStoreError(
                f"{path} is left from an interrupted 'keys protect': see docs/operations.md "
                "(Keys) before anything else is done with these keystores"
            )


def _seal_secret(staging: Path, protector: Protector, name: str, value: bytes) -> None:
    sealed: dict[str, Any] = {"format": _SECRET_FORMAT, "name": name}
    sealed |= protector.wrap(value, _SECRET_AD + name.encode())
    write_private(staging / f"{name}.secret", sealed)


def _read_plain(path: Path) -> bytes:
    check_private(path)
    value = path.read_bytes()
    if len(value) != _SIZE:
        raise KeyStoreError(f"{path}: not a 32-byte secret")
    return value


def _sync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        else:
            _sync_dir(path)
    _sync_dir(root)


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
