"""Web accounts (the console's IG officers, a desk's staff): a small file of Argon2id hashes
and TOTP secrets, one file per app (and per party for the desk).

Accounts are few (a council's IG team, a hub's workers) and are made by an administrator at
the shell with ``accord console add-user`` or ``accord desk add-user``, so a file (0600, in a
0700 directory, replaced atomically, every change under one lock) does the job without
another database; the only writes a server makes are a code's time step, an upgraded hash and
its owner's new password (``/account/password``). Passwords are
hashed with argon2-cffi's Argon2id defaults (RFC 9106's second recommended profile); a hash
made with older parameters is upgraded at the next successful sign-in. An account may also
have a second factor: a TOTP secret (RFC 6238, computed by pyotp) that the person keeps in an
authenticator app. The file holds that secret only sealed (:mod:`broker.webauth._totpbox`),
under a key from its owner's keystore; a secret an older Accord left plain is read, and sealed
at the next write of the file, if the keystore has that key (a server never makes it:
:mod:`broker.webauth._totpbox`). A server checks at its start that every sealed secret opens
(:meth:`UserFile.check_second_factors`), so a wrong keystore stops it at once rather than
locking officers out one sign-in at a time.

:meth:`UserFile.authenticate` does the same work whatever the outcome (unknown name, wrong
password, wrong or missing code, success), so its timing tells an attacker nothing about which
accounts exist. Throttling is :mod:`broker.webauth._throttle`'s.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from broker.crypto import random_bytes
from broker.errors import ConfigError, SecondFactorUnreadable, UsageError
from broker.events import holds_nhs_or_telephone_number
from broker.webauth._password import MAX_PASSWORD, check_password
from broker.webauth._stamps import ADMIN, OWNER, ended_by, keep_stamp, replace_stamp, stamp_of
from broker.webauth._totpbox import TotpBox

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")
_FORMAT = 1
TOTP_ISSUER = "Accord governance console"  # what the authenticator app shows beside the name
_TOTP_WINDOW = 1  # steps either side of now: a phone's clock a little off, a slow typist
_MAX_CODE = 16
_DECOY = "accord-decoy"  # the name the decoy secret is sealed to (it is never in the file)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def check_username(name: str) -> str:
    if not USERNAME.fullmatch(name):
        raise UsageError(
            "user name: 2 to 63 characters of a-z, 0-9, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    if holds_nhs_or_telephone_number(name):
        # The name goes into the append-only audit log (the desk's "opened by", a console
        # review's reviewer), where an NHS or telephone number would point at a person; the
        # broker records a desk user's openings under such a name with it withheld.
        raise UsageError("user name: a staff id, never an NHS or telephone number")
    return name


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    created_at: datetime
    second_factor: bool = False


@dataclass(frozen=True, slots=True)
class TotpEnrolment:
    """What an authenticator app needs: shown to the administrator once, never logged."""

    secret: str = field(repr=False)  # base32
    uri: str = field(repr=False)  # otpauth://totp/…, what a QR code would hold


class UserFile:
    """The accounts file: ``{"format": 1, "users": {name: {"hash": …, "created_at": …}}}``.

    An account with a second factor also has ``"totp": {"secret_sealed": "v1:…",
    "enrolled_at": …, "last_step": n}``: the secret sealed by ``box`` (required, so that no
    caller stores one plain); ``last_step`` is the newest time step whose code was accepted,
    kept in the file so the console and the CLI refuse a code either has already taken. An
    account's credential has a ``"stamp"`` and the stamps it replaced, with who replaced
    each (:mod:`broker.webauth._stamps`). A
    plain ``"secret"`` (base32) from an older Accord still signs in, and is sealed by the
    next write of the file, whatever the write is for, when ``box`` has a key; a box without
    one (a keystore without the secret) leaves it plain.
    """

    def __init__(
        self,
        path: Path,
        *,
        box: TotpBox,
        hasher: PasswordHasher | None = None,
        issuer: str = TOTP_ISSUER,
    ) -> None:
        self.path = path
        self.issuer = issuer  # the desk's accounts are not the console's
        # Whose accounts these are (the console, a desk's party), as the box seals them: a
        # file written by one owner is refused by another, so two desks given one users file
        # cannot sign in to each other.
        self.owner = box.owner
        self._box = box
        self._hasher = hasher or PasswordHasher()
        # Verifying against these when the name is unknown costs what a real check costs.
        self._decoy = self._hasher.hash("accord-decoy-password")
        self._decoy_totp = pyotp.random_base32()
        # A box without a key opens nothing, the decoy included: a key of its own, never kept.
        self._decoy_box = box if box.keyed else TotpBox(random_bytes(32), box.owner)
        self._decoy_sealed = self._decoy_box.seal(_DECOY, self._decoy_totp)
        self._thread_lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None  # the file as has_accounts last read it
        self._any = False

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return {"format": _FORMAT, "users": {}}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.path}: cannot read the console accounts file") from exc
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ConfigError(f"{self.path}: not a console accounts file (format {_FORMAT})")
        held = data.get("owner")
        if held is not None and held != self.owner:
            raise ConfigError(
                f"{self.path}: these are {held}'s accounts, not {self.owner}'s: the console "
                "and each desk have their own users file (ACCORD_CONSOLE__USERS_FILE, "
                "ACCORD_DESK__USERS_FILE)"
            )
        return data

    def _write(self, data: dict[str, Any]) -> None:
        data["owner"] = self.owner
        for name, user in data["users"].items():
            totp = user.get("totp")
            # An older Accord's: sealed if there is a key to seal it under (no key is ever made
            # here, so none made in a pod's memory locks it away at the next restart).
            if totp is not None and "secret" in totp and self._box.keyed:
                totp["secret_sealed"] = self._box.seal(name, totp.pop("secret"))
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

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise read-modify-write of the file across threads and processes.

        The console and the CLI both write it, and a TOTP code must be taken exactly once
        even when two sign-ins with it race.
        """
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self._thread_lock:
            fd = os.open(self.path.parent / ".users.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    def _user(self, name: str) -> dict[str, Any] | None:
        if not USERNAME.fullmatch(name):
            return None
        user: dict[str, Any] | None = self._read()["users"].get(name)
        return user

    def accounts(self) -> list[Account]:
        users = self._read()["users"]
        return [
            Account(name, datetime.fromisoformat(u["created_at"]), second_factor="totp" in u)
            for name, u in sorted(users.items())
        ]

    def has_accounts(self) -> bool:
        """Whether the file holds an account yet; a missing file holds none. Read again only
        when the file has changed (each write replaces it), as a readiness probe asks every
        few seconds. A file that cannot be read is ``ConfigError``, as for any other reader."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._seen = None
            return False
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot read the console accounts file") from exc
        seen = (st.st_ino, st.st_mtime_ns, st.st_size)
        if seen != self._seen:
            self._any = bool(self._read()["users"])
            self._seen = seen
        return self._any

    def exists(self, name: str) -> bool:
        return name in self._read()["users"]

    def has_second_factor(self, name: str) -> bool:
        user = self._user(name)
        return user is not None and "totp" in user

    def stamp(self, name: str) -> str | None:
        """The account's credential stamp (None: no such account): :mod:`broker.webauth._stamps`.

        A session remembers the stamp it signed in with; a reset password, its owner's new
        password or a removed account changes it, and every session of the old credential
        ends. An upgrade of the hash does not.
        """
        user = self._read()["users"].get(name)
        return None if user is None else stamp_of(user)

    def add(
        self, name: str, password: str, *, replace: bool = False, totp: bool = False
    ) -> Account:
        """Create (or with ``replace``, remake) an account; ``totp`` enrols a new second factor.

        Remaking an account replaces its second factor too: without ``totp`` it has none.
        """
        check_username(name)
        check_password(password, name)  # its length, and not one an attacker tries first
        with self._locked():
            data = self._read()
            if name in data["users"] and not replace:
                raise UsageError(f"user {name} exists (use --reset to set a new password)")
            now = _utcnow()
            user: dict[str, Any] = {
                "hash": self._hasher.hash(password),
                "created_at": now.isoformat(),
            }
            replace_stamp(user, data["users"].get(name), ADMIN)
            if totp:
                sealed = self._box.seal(name, pyotp.random_base32())
                user["totp"] = {"secret_sealed": sealed, "enrolled_at": now.isoformat()}
            data["users"][name] = user
            self._write(data)
        return Account(name, now, second_factor=totp)

    def totp_enrolment(self, name: str) -> TotpEnrolment | None:
        """What the officer's authenticator app needs (None: the account has no second factor)."""
        user = self._user(name)
        if user is None or "totp" not in user:
            return None
        secret = self._secret(name, user["totp"])
        uri = pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name=self.issuer)
        return TotpEnrolment(secret=secret, uri=uri)

    def remove(self, name: str) -> None:
        with self._locked():
            data = self._read()
            if data["users"].pop(name, None) is None:
                raise UsageError(f"no {_whose(self.owner, name)}")
            self._write(data)

    def authenticate(
        self, name: str, password: str, code: str | None, *, now: datetime | None = None
    ) -> bool:
        """True when ``password`` is ``name``'s and, if the account has a second factor,
        ``code`` is a current TOTP code (one step either side) not accepted before.

        Every path does one Argon2 verification (an unknown name against a decoy hash) and the
        same TOTP work, so no answer comes back sooner than another.
        """
        return self.sign_in(name, password, code, now=now) is not None

    def sign_in(
        self, name: str, password: str, code: str | None, *, now: datetime | None = None
    ) -> str | None:
        """:meth:`authenticate`, answered with the account's stamp as the write that took the
        code left it (None: refused). A session keeps this one: the stamp read again after the
        file's lock is let go may be a reset's or a removal's that came in between, and a
        session given it would outlive that reset (review r46a 1)."""
        found = self._check(name, password, code, now or _utcnow())
        return None if found is None else self._accept(name, password, *found)

    def change_password(
        self, name: str, password: str, code: str | None, new: str, *, now: datetime | None = None
    ) -> str | None:
        """Give ``name`` the password ``new`` (``UsageError`` if add-user would refuse it)
        when ``password`` and ``code`` are right as :meth:`authenticate` has them (the code
        is taken): the account's new stamp, as written; None when not. The second factor is
        kept; the stamp changes, so every session of the old password ends, told that its
        owner changed it (:meth:`ended_by_owner`)."""
        check_password(new, name)
        found = self._check(name, password, code, now or _utcnow())
        if found is None:
            return None
        # Hashed before the lock is taken: Argon2 takes a moment, the lock is everyone's.
        return self._accept(name, password, *found, new_hash=self._hasher.hash(new))

    def ended_by_owner(self, name: str, stamp: str | None) -> bool:
        """Whether ``name``'s credential of ``stamp`` was replaced by its owner
        (:meth:`change_password`), not by an administrator's ``add-user``: what a session it
        ended is told. Recorded when it was replaced, so a later change says nothing of it."""
        return ended_by(self._user(name), stamp) == OWNER

    def _check(
        self, name: str, password: str, code: str | None, now: datetime
    ) -> tuple[str, int | None] | None:
        """The account's stamp and the code's time step (None: no second factor) when
        ``password`` and ``code`` are ``name``'s; None when not. The same work on every path."""
        user = self._user(name)
        stored = user["hash"] if user else self._decoy
        password_ok = self._password_ok(stored, password)
        totp = user.get("totp") if user else None
        secret, unopened = self._secret_or_decoy(name, totp)
        if unopened is not None and password_ok:
            # Said only to whoever has the password: to anyone else, an error in place of
            # "refused" would tell that the account exists.
            raise unopened
        step = _totp_step(
            secret,
            code,
            now,
            after=int(totp.get("last_step", -1)) if totp else -1,
        )
        if user is None or not password_ok or (totp is not None and step is None):
            return None
        return stamp_of(user), step if totp else None

    def verify(self, name: str, password: str) -> bool:
        """:meth:`authenticate` without a code: True only for an account with no second factor."""
        return self.authenticate(name, password, None)

    def spend(self, password: str, code: str | None, *, now: datetime | None = None) -> None:
        """The work of :meth:`authenticate`, on the decoy, for an attempt refused unchecked."""
        self._read()
        self._password_ok(self._decoy, password)
        secret, _ = self._secret_or_decoy(_DECOY, None)
        _totp_step(secret, code, now or _utcnow(), after=-1)

    def check_second_factors(self) -> None:
        """Refuse (``ConfigError``, one line) a file whose second factors this owner's keystore
        cannot serve; a server calls it at its start, before anyone signs in.

        - a sealed secret that does not open (another keystore's, an older backup's, or the
          keystore has no ``users-totp`` secret at all): the accounts, by name;
        - a plain secret (an older Accord's) and no ``users-totp`` secret to seal it under:
          a server never makes that secret, so it is made once, durably, by ``keys init``.
        """
        users = self._read()["users"]
        factors = {name: u["totp"] for name, u in sorted(users.items()) if "totp" in u}
        plain = [n for n, t in factors.items() if "secret_sealed" not in t and "secret" in t]
        unopened = []
        for name, totp in factors.items():
            if name in plain:
                continue
            try:
                self._secret(name, totp)
            except ConfigError:
                unopened.append(name)
        where = self._box.where()
        if unopened:
            why = (
                "has no users-totp secret to open them"
                if not self._box.keyed
                else "does not open them with its users-totp secret"
            )
            raise ConfigError(
                f"{self.path}: the second factors of {', '.join(unopened)} are sealed, and "
                f"{where} {why}: restore the keystore that sealed them, or re-enrol each "
                f"account with '{_add_user(self.owner)} NAME --reset'"
            )
        if plain and not self._box.keyed:
            raise ConfigError(
                f"{self.path}: {len(plain)} second factors from an older Accord are not sealed "
                f"yet, and {where} has no users-totp secret to seal them under: make it with "
                f"'accord keys init --party {self.owner.removeprefix('desk:')}' where the "
                "keystore is kept for good (and archive it again, on Kubernetes), then start again"
            )

    def _secret(self, name: str, totp: dict[str, Any]) -> str:
        """The account's base32 secret: opened, or as an older Accord left it."""
        sealed = totp.get("secret_sealed")
        if isinstance(sealed, str):
            try:
                return self._box.open(name, sealed)
            except ConfigError as exc:
                raise SecondFactorUnreadable(
                    f"{self.path}: {exc}", path=str(self.path), account=name
                ) from None
        plain = totp.get("secret")
        if isinstance(plain, str):
            return plain
        raise SecondFactorUnreadable(
            f"{self.path}: the second factor of {name} has no secret",
            path=str(self.path),
            account=name,
        )

    def _secret_or_decoy(
        self, name: str, totp: dict[str, Any] | None
    ) -> tuple[str, ConfigError | None]:
        """The secret to check a code against, opened as a real one is (the decoy's too, so
        no answer comes sooner); the decoy's and the refusal if the account's does not open."""
        if totp is None:
            return self._decoy_box.open(_DECOY, self._decoy_sealed), None
        try:
            return self._secret(name, totp), None
        except ConfigError as exc:
            return self._decoy_totp, exc

    def _password_ok(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password[:MAX_PASSWORD])
        except (VerificationError, InvalidHashError):
            return False

    def _accept(
        self, name: str, password: str, stamp: str, step: int | None, *, new_hash: str = ""
    ) -> str | None:
        """Take the code's time step and upgrade an old hash (or set ``new_hash``, its owner's
        new password's), unless the account moved on from the credential checked, of
        ``stamp`` (None). The account's stamp as written, read under the same lock: no
        removal or reset can come between. The stamp, not the hash, is compared: another
        sign-in's upgrade of the hash meanwhile is the same credential, and a right password
        was refused (review r46e 4)."""
        with self._locked():
            data = self._read()
            user = data["users"].get(name)
            if user is None or stamp_of(user) != stamp:
                return None  # removed or reset while its password was being checked
            changed = False
            if step is not None:
                totp = user.get("totp")
                if totp is None or step <= int(totp.get("last_step", -1)):
                    return None  # a concurrent sign-in took this code first
                totp["last_step"] = step
                changed = True
            if new_hash:
                replace_stamp(user, dict(user), OWNER)
                user["hash"] = new_hash
                changed = True
            elif self._hasher.check_needs_rehash(user["hash"]):
                keep_stamp(user)  # an upgrade is no new credential: no session ends
                user["hash"] = self._hasher.hash(password)
                changed = True
            if changed:
                self._write(data)
            return stamp_of(user)


def _whose(owner: str, name: str) -> str:
    """``name`` as an account of ``owner``'s file, in the words its commands use."""
    if owner.startswith("desk:"):
        return f"desk user {name} of {owner.removeprefix('desk:')}"
    return f"console user {name}"


def _add_user(owner: str) -> str:
    """The command that re-enrols an account of ``owner``'s file."""
    if owner.startswith("desk:"):
        return f"accord desk add-user --as {owner.removeprefix('desk:')}"
    return "accord console add-user"


def _totp_step(secret: str, code: str | None, now: datetime, *, after: int) -> int | None:
    """The newest time step within one of ``now`` whose code is ``code`` and is after ``after``.

    pyotp's ``verify(valid_window=1)`` does not say which step matched, and refusing a code
    already used needs it; so each of the three steps is checked with pyotp's own ``verify``
    (which compares in constant time), always all three.
    """
    totp = pyotp.TOTP(secret)
    given = (code or "").replace(" ", "")[:_MAX_CODE]
    found = None
    for offset in range(-_TOTP_WINDOW, _TOTP_WINDOW + 1):
        at = now + timedelta(seconds=offset * totp.interval)
        if totp.verify(given, for_time=at) and totp.timecode(at) > after:
            found = totp.timecode(at)
    return found
