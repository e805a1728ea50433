"""Cryptographic primitives: the one place Accord touches ``cryptography.hazmat``.

Small wrappers carrying raw bytes in and out (AES-256-GCM, Ed25519, HPKE with the hybrid
ML-KEM-768 + X25519 KEM, scrypt, the embedded Kafka's TLS certificates), each translating
the library's exceptions into ``broker.errors`` types. The envelope (sealed records), the
keystore (key generation, key wrapping) and the embedded Kafka build on these; nothing else
imports ``cryptography``.
"""

from broker.crypto._primitives import (
    AEAD_KEY_LEN,
    AEAD_NONCE_LEN,
    AEAD_TAG_LEN,
    ED25519_SIG_LEN,
    HPKE_AEAD_ID,
    HPKE_KDF_ID,
    Aead,
    KemAlg,
    KemPrivateKey,
    KemPublicKey,
    SigningKey,
    VerifyKey,
    hpke_open,
    hpke_seal,
    random_bytes,
    scrypt_kek,
    tls_ca,
    tls_hosts,
    tls_leaf,
    tls_not_after,
)

__all__ = [
    "AEAD_KEY_LEN",
    "AEAD_NONCE_LEN",
    "AEAD_TAG_LEN",
    "ED25519_SIG_LEN",
    "HPKE_AEAD_ID",
    "HPKE_KDF_ID",
    "Aead",
    "KemAlg",
    "KemPrivateKey",
    "KemPublicKey",
    "SigningKey",
    "VerifyKey",
    "hpke_open",
    "hpke_seal",
    "random_bytes",
    "scrypt_kek",
    "tls_ca",
    "tls_hosts",
    "tls_leaf",
    "tls_not_after",
]
