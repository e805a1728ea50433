"""Keys: one ``KeyStore`` interface, the local file keystore, and exchanging public keys.

Every party has an Ed25519 signing key and an HPKE encryption key (ML-KEM-768 + X25519 by
default); key ids are fingerprints of the public keys. Keys rotate (the new key seals, the old
one still opens until it is retired or its grace period ends) and can be revoked. Each
organisation's keystore holds only its own private keys; everyone else's public keys arrive
in a directory the governance key signs (``schemas/key-directory.md``). The broker's own
principals (``broker.principals``) have keys too. The key types themselves (``KeyInfo``,
``KeyPurpose``, ...) are the envelope's. A keystore also keeps the secrets enrolment makes
for a party's web apps and desk (``device_key``, ``desk_linkage_key``, ``TOTP_SECRET_NAME``),
here so that ``accord keys init`` needs none of the servers' dependencies.
"""

from broker.keys._desk_linkage import (
    LINKAGE_FILE,
    LINKAGE_SECRET,
    desk_linkage_key,
    linkage_secret_name,
)
from broker.keys._directory import SignedDirectory
from broker.keys._exchange import (
    directory_signer,
    export_entries,
    import_directory,
    imported_directory,
    init_keystores,
    keystores_under,
    last_signed_serial,
    protect_keystores,
    sign_directory,
    trusted_signers,
)
from broker.keys._merge import KeyChange
from broker.keys._own_listed import (
    lost_signing_keys,
    lost_signing_keys_advice,
    unheld_encryption_keys,
)
from broker.keys._protocol import ALL_PURPOSES, SPECIAL_PRINCIPALS, KeyStore
from broker.keys._store import UNPROTECTED_WARNING, FileKeyStore, warn_if_unprotected
from broker.keys._web_secrets import (
    LEGACY_DEVICE_FILE,
    TOTP_SECRET_NAME,
    device_key,
    device_secret_name,
)

__all__ = [
    "ALL_PURPOSES",
    "LEGACY_DEVICE_FILE",
    "LINKAGE_FILE",
    "LINKAGE_SECRET",
    "SPECIAL_PRINCIPALS",
    "TOTP_SECRET_NAME",
    "UNPROTECTED_WARNING",
    "FileKeyStore",
    "KeyChange",
    "KeyStore",
    "SignedDirectory",
    "desk_linkage_key",
    "device_key",
    "device_secret_name",
    "directory_signer",
    "export_entries",
    "import_directory",
    "imported_directory",
    "init_keystores",
    "keystores_under",
    "last_signed_serial",
    "linkage_secret_name",
    "lost_signing_keys",
    "lost_signing_keys_advice",
    "protect_keystores",
    "sign_directory",
    "trusted_signers",
    "unheld_encryption_keys",
    "warn_if_unprotected",
]
