"""Audit checkpoints signed and verified with the ``audit`` principal's keystore keys."""

from __future__ import annotations

from broker.envelope import KeyPurpose, KeyResolver, KeyStatus, verify_detached
from broker.principals import Principal


class KeystoreAuditSigner:
    """Signs with the newest live ``audit`` signing key."""

    def __init__(self, keys: KeyResolver) -> None:
        self._keys = keys

    @property
    def key_id(self) -> str:
        return self._keys.current_signing_key(Principal.AUDIT).info.key_id

    def sign(self, data: bytes) -> bytes:
        return self._keys.current_signing_key(Principal.AUDIT).key.sign(data)


class KeystoreAuditVerifier:
    """Accepts signatures by any ``audit`` signing key that was not revoked.

    A rotated-out (retired or expired) audit key still vouches for the checkpoints it signed
    while it was current; a revoked key vouches for nothing.
    """

    def __init__(self, keys: KeyResolver) -> None:
        self._keys = keys

    def verify(self, key_id: str, data: bytes, signature: bytes) -> bool:
        info = self._keys.public_key(key_id)
        if info is None or info.party != Principal.AUDIT or info.purpose is not KeyPurpose.SIGN:
            return False
        if info.status is KeyStatus.REVOKED:
            return False
        return verify_detached(info, data, signature)
