"""Key metadata the envelope reasons about, and the narrow interface it needs from a keystore.

The envelope depends only on :class:`KeyResolver`; ``broker.keys.KeyStore`` extends it with
management operations. Keeping these types here (not in ``broker.keys``) keeps the layering
one-way: ``keys`` builds on ``envelope``, never the reverse.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Protocol

from broker.crypto import KemAlg, KemPrivateKey, SigningKey, VerifyKey
from broker.errors import MalformedEnvelope

__all__ = [
    "KEY_ID_LEN",
    "KeyAlg",
    "KeyInfo",
    "KeyPurpose",
    "KeyResolver",
    "KeyStatus",
    "SigningIdentity",
    "compute_key_id",
    "verify_detached",
]

KEY_ID_LEN = 16
_KEY_ID_LABEL = b"accord/key-id/v1\x00"


class KeyPurpose(enum.StrEnum):
    SIGN = "sign"  # Ed25519: signs DEK bundles (and, for `audit`, audit checkpoints)
    ENCRYPT = "encrypt"  # HPKE KEM: DEKs are sealed to it


class KeyAlg(enum.StrEnum):
    ED25519 = "ed25519"
    X25519 = KemAlg.X25519.value
    MLKEM768_X25519 = KemAlg.MLKEM768_X25519.value

    @property
    def purpose(self) -> KeyPurpose:
        return _PURPOSES[self]

    @property
    def kem(self) -> KemAlg:
        if self is KeyAlg.ED25519:
            raise ValueError("ed25519 is not a KEM")
        return KemAlg(self.value)


_PURPOSES: Final = {
    KeyAlg.ED25519: KeyPurpose.SIGN,
    KeyAlg.X25519: KeyPurpose.ENCRYPT,
    KeyAlg.MLKEM768_X25519: KeyPurpose.ENCRYPT,
}


class KeyStatus(enum.StrEnum):
    """Lifecycle of a key.

    ``active`` keys verify and open; the newest active key of a party and purpose is the one
    used to seal to, and to sign with (after a rotation, once a signed directory names it:
    ``FileKeyStore.signing_key``). ``retired`` keys (rotated out, grace over) and ``revoked`` keys
    (compromised) are refused for everything. An active key past ``not_after`` is expired and
    refused as if retired. Two exceptions: an ``Opener(at_rest=True)``, for what a party
    sealed for itself and keeps (the worker's state), still opens with retired and expired
    keys, never with revoked ones; and an ``Opener(expired_own_keys=True)`` (a recipient's
    subscriber) opens with its own expired encryption keys what was sealed while they were
    live, never with retired or revoked ones.
    """

    ACTIVE = "active"
    RETIRED = "retired"
    REVOKED = "revoked"


_ACTIVE: Final = KeyStatus.ACTIVE  # module constant: enum attribute access is slow on hot paths


def compute_key_id(alg: KeyAlg, public: bytes) -> str:
    """The key id: a fingerprint, ``SHA-256(label || len(alg) || alg || public)[:16]`` in hex."""
    name = alg.value.encode("ascii")
    digest = hashlib.sha256(_KEY_ID_LABEL + bytes([len(name)]) + name + public).digest()
    return digest[:KEY_ID_LEN].hex()


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """One entry of the public key directory."""

    key_id: str
    party: str
    alg: KeyAlg
    public: bytes = field(repr=False)
    created_at: datetime
    status: KeyStatus = KeyStatus.ACTIVE
    not_after: datetime | None = None
    status_changed_at: datetime | None = None

    @property
    def purpose(self) -> KeyPurpose:
        return _PURPOSES[self.alg]

    def is_live(self, at: datetime) -> bool:
        """Usable at ``at``: active and not expired."""
        return self.status is KeyStatus.ACTIVE and (self.not_after is None or at < self.not_after)

    def is_live_ts(self, ts: float) -> bool:
        """:meth:`is_live` for a POSIX timestamp (the hot paths hold the clock as a float)."""
        return self.status is _ACTIVE and (
            self.not_after is None or ts < self.not_after.timestamp()
        )


@dataclass(frozen=True, slots=True)
class SigningIdentity:
    """A party's current signing key with its private half."""

    info: KeyInfo
    key: SigningKey


class KeyResolver(Protocol):
    """What sealing and opening need from a keystore.

    Lookups return ``None`` (or raise ``KeyNotFound`` for the ``current_*`` calls); expiry
    (``not_after``) is judged by the envelope against its own clock, so the status rules live
    in one place and tests can move time.
    """

    def public_key(self, key_id: str) -> KeyInfo | None:
        """Any key in the directory, whatever its status."""
        ...

    def current_signing_key(self, party: str) -> SigningIdentity:
        """The signing key ``party`` signs with now (which this store holds privately): its
        newest active one, or, after a rotation, the newest one others already hold."""
        ...

    def current_encryption_key(self, party: str) -> KeyInfo:
        """The newest active encryption key of ``party`` (public half)."""
        ...

    def decryption_key(self, key_id: str) -> KemPrivateKey | None:
        """The private half of an encryption key this store holds, else ``None``."""
        ...


def verify_detached(info: KeyInfo, message: bytes, signature: bytes) -> bool:
    """Check an Ed25519 signature made by the key ``info`` describes (status is the caller's).

    For signatures outside envelopes, such as audit checkpoints; the caller decides which
    key statuses it accepts.
    """
    if info.alg is not KeyAlg.ED25519:
        return False
    try:
        return VerifyKey(info.public).verify(signature, message)
    except MalformedEnvelope:
        return False
