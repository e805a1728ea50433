"""Keys: one ``KeyStore`` interface and the local file keystore that implements it.

Every party has an Ed25519 signing key and an HPKE encryption key (ML-KEM-768 + X25519 by
default); key ids are fingerprints of the public keys. Keys rotate (the new key seals, the old
one still opens until it is retired or its grace period ends) and can be revoked. The special
principals (``broker.principals``) exist in every deployment. The key types themselves
(``KeyInfo``, ``KeyPurpose``, ...) are the envelope's.
"""

from broker.keys._linkage import load_linkage_key
from broker.keys._protocol import ALL_PURPOSES, SPECIAL_PRINCIPALS, KeyStore
from broker.keys._store import FileKeyStore

__all__ = [
    "ALL_PURPOSES",
    "SPECIAL_PRINCIPALS",
    "FileKeyStore",
    "KeyStore",
    "load_linkage_key",
]
