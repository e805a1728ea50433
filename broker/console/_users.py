"""IG officers' console accounts: a small file of Argon2id hashes, and a sign-in throttle.

Accounts are few (a council's IG team) and are made by an administrator at the shell with
``accord console add-user``, so a file (0600, in a 0700 directory, replaced atomically) does
the job without another database. Passwords are hashed with argon2-cffi's Argon2id defaults
(RFC 9106's second recommended profile); a hash made with older parameters is upgraded at the
next successful sign-in.

Sign-in answers the same thing, after the same work, whether the name is unknown or the
password wrong, so it tells an attacker nothing about which accounts exist. After too many
failures an account is locked for a while; the lock is in memory, per console process.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from broker.errors import ConfigError, UsageError

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # argon2 takes any length; a cap stops a megabyte "password" costing CPU
_FORMAT = 1


def _utcnow() -> datetime:
    return datetime.now(UTC)


def check_username(name: str) -> str:
    if not USERNAME.fullmatch(name):
        raise UsageError(
            "user name: 2 to 63 characters of a-z, 0-9, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    return name


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise UsageError(f"password: {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    try:
        password.encode("utf-8")  # stdin's bytes that are not UTF-8 arrive as lone surrogates
    except UnicodeEncodeError:
        raise UsageError("password: not UTF-8 text") from None
    return password


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    created_at: datetime


class UserFile:
    """The accounts file: ``{"format": 1, "users": {name: {"hash": …, "created_at": …}}}``."""

    def __init__(self, path: Path, *, hasher: PasswordHasher | None = None) -> None:
        self.path = path
        self._hasher = hasher or PasswordHasher()
        # Verifying against this when the name is unknown costs what a real check costs.
        self._decoy = self._hasher.hash("accord-decoy-password")

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return {"format": _FORMAT, "users": {}}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.path}: cannot read the console accounts file") from exc
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ConfigError(f"{self.path}: not a console accounts file (format {_FORMAT})")
        return data

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".users-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=2, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            Path(tmp).chmod(0o600)
            Path(tmp).replace(self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def accounts(self) -> list[Account]:
        users = self._read()["users"]
        return [
            Account(name, datetime.fromisoformat(u["created_at"]))
            for name, u in sorted(users.items())
        ]

    def exists(self, name: str) -> bool:
        return name in self._read()["users"]

    def stamp(self, name: str) -> str | None:
        """A fingerprint of the account's current password hash (None: no such account).

        A session remembers the stamp it signed in with; a reset password or a removed
        account changes it, and every session of the old credential ends.
        """
        user = self._read()["users"].get(name)
        if user is None:
            return None
        return hashlib.sha256(user["hash"].encode()).hexdigest()[:32]

    def add(self, name: str, password: str, *, replace: bool = False) -> Account:
        check_username(name)
        check_password(password)
        data = self._read()
        if name in data["users"] and not replace:
            raise UsageError(f"user {name} exists (use --reset to set a new password)")
        now = _utcnow()
        data["users"][name] = {"hash": self._hasher.hash(password), "created_at": now.isoformat()}
        self._write(data)
        return Account(name, now)

    def remove(self, name: str) -> None:
        data = self._read()
        if data["users"].pop(name, None) is None:
            raise UsageError(f"no console user {name}")
        self._write(data)

    def verify(self, name: str, password: str) -> bool:
        """True when ``password`` is ``name``'s; the same work is done when it is not."""
        user = self._read()["users"].get(name) if USERNAME.fullmatch(name) else None
        stored = user["hash"] if user else self._decoy
        try:
            self._hasher.verify(stored, password[:MAX_PASSWORD])
        except (VerificationError, InvalidHashError):
            return False
        if user is None:
            return False
        if self._hasher.check_needs_rehash(stored):
            data = self._read()
            data["users"][name]["hash"] = self._hasher.hash(password)
            self._write(data)
        return True


class SignInThrottle:
    """Locks an account for ``lockout`` after ``limit`` consecutive failed sign-ins.

    An attempt is counted *before* the password is checked (``attempt``) and forgiven on
    success, so concurrent guesses cannot all slip past the limit while the hashes run. Only
    existing accounts are tracked (the caller says which): unknown names cannot sign in
    anyway, and tracking them would let random names grow this without bound.
    """

    def __init__(
        self, *, limit: int, lockout: timedelta, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self._limit = limit
        self._lockout = lockout
        self._clock = clock
        self._failures: dict[str, tuple[int, datetime]] = {}

    def locked(self, name: str) -> bool:
        count, last = self._failures.get(name, (0, datetime.min.replace(tzinfo=UTC)))
        if count < self._limit:
            return False
        if self._clock() - last >= self._lockout:
            del self._failures[name]
            return False
        return True

    def attempt(self, name: str) -> bool:
        """Count an attempt on ``name``; False (and nothing counted) when it is locked."""
        if self.locked(name):
            return False
        count, _ = self._failures.get(name, (0, self._clock()))
        self._failures[name] = (count + 1, self._clock())
        return True

    def succeeded(self, name: str) -> None:
        self._failures.pop(name, None)
