"""Keys: one ``KeyStore`` interface and the local file keystore that implements it.

Every party has an Ed25519 signing key and an HPKE encryption key (ML-KEM-768 + X25519 by
default); key ids are fingerprints of the public keys. Keys rotate (the new key seals, the old
one still opens until it is retired or its grace period ends) and can be revoked. The special
principals ``worker``, ``audit`` and ``governance`` exist in every deployment.
"""

from broker.envelope import KeyAlg, KeyInfo, KeyPurpose, KeyStatus, compute_key_id
from broker.keys._protocol import (
    ALL_PURPOSES,
    DEFAULT_ROTATION_GRACE,
    SPECIAL_PRINCIPALS,
    KeyStore,
)
from broker.keys._store import FileKeyStore

__all__ = [
    "ALL_PURPOSES",
    "DEFAULT_ROTATION_GRACE",
    "SPECIAL_PRINCIPALS",
    "FileKeyStore",
    "KeyAlg",
    "KeyInfo",
    "KeyPurpose",
    "KeyStatus",
    "KeyStore",
    "compute_key_id",
]
