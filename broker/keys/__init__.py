"""Keys: one ``KeyStore`` interface, the local file keystore, and exchanging public keys.

Every party has an Ed25519 signing key and an HPKE encryption key (ML-KEM-768 + X25519 by
default); key ids are fingerprints of the public keys. Keys rotate (the new key seals, the old
one still opens until it is retired or its grace period ends) and can be revoked. Each
organisation's keystore holds only its own private keys; everyone else's public keys arrive
in a directory the governance key signs (``schemas/key-directory.md``). The broker's own
principals (``broker.principals``) have keys too. The key types themselves (``KeyInfo``,
``KeyPurpose``, ...) are the envelope's.
"""

from broker.keys._directory import SignedDirectory
from broker.keys._exchange import (
    export_entries,
    import_directory,
    init_keystores,
    keystores_under,
    protect_keystores,
    sign_directory,
    trusted_signers,
)
from broker.keys._protocol import ALL_PURPOSES, SPECIAL_PRINCIPALS, KeyStore
from broker.keys._store import UNPROTECTED_WARNING, FileKeyStore, warn_if_unprotected

__all__ = [
    "ALL_PURPOSES",
    "SPECIAL_PRINCIPALS",
    "UNPROTECTED_WARNING",
    "FileKeyStore",
    "KeyStore",
    "SignedDirectory",
    "export_entries",
    "import_directory",
    "init_keystores",
    "keystores_under",
    "protect_keystores",
    "sign_directory",
    "trusted_signers",
    "warn_if_unprotected",
]
