"""The only module in Accord that touches ``cryptography.hazmat``.

Everything else (the envelope, the keystore, the benchmark) calls these small wrappers, so a
change of library version or API is contained here, and every ``cryptography`` exception is
translated into a ``broker.errors`` type at this boundary. Wrappers carry raw bytes in and out;
the byte layouts are specified in ``schemas/envelope.md``.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import ipaddress
import os
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, hpke, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from broker.errors import KeyStoreError, MalformedEnvelope, TamperedEnvelope

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
    "tls_leaf",
    "tls_not_after",
]

AEAD_KEY_LEN: Final = 32
AEAD_NONCE_LEN: Final = 12
AEAD_TAG_LEN: Final = 16
ED25519_SIG_LEN: Final = 64
HPKE_KDF_ID: Final = 0x0001  # HKDF-SHA256
HPKE_AEAD_ID: Final = 0x0002  # AES-256-GCM

_MLKEM_SEED_LEN: Final = 64
_MLKEM_PK_LEN: Final = 1184
_X25519_LEN: Final = 32


class KemAlg(enum.StrEnum):
    """HPKE KEMs an encryption key may use; values match ``broker.config.KemSuite``."""

    MLKEM768_X25519 = "mlkem768-x25519"
    X25519 = "x25519"

    @property
    def hpke_id(self) -> int:
        # RFC 9180 / IANA registry; 0x647A is MLKEM768-X25519 (X-Wing) of draft-ietf-hpke-pq.
        return 0x647A if self is KemAlg.MLKEM768_X25519 else 0x0020

    @property
    def enc_len(self) -> int:
        return 1120 if self is KemAlg.MLKEM768_X25519 else 32

    @property
    def public_len(self) -> int:
        return _MLKEM_PK_LEN + _X25519_LEN if self is KemAlg.MLKEM768_X25519 else _X25519_LEN

    @property
    def private_len(self) -> int:
        return _MLKEM_SEED_LEN + _X25519_LEN if self is KemAlg.MLKEM768_X25519 else _X25519_LEN

    @classmethod
    def from_hpke_id(cls, kem_id: int) -> KemAlg | None:
        return next((alg for alg in cls if alg.hpke_id == kem_id), None)

    def _suite(self) -> hpke.Suite:
        kem = hpke.KEM.MLKEM768_X25519 if self is KemAlg.MLKEM768_X25519 else hpke.KEM.X25519
        return hpke.Suite(kem, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


def random_bytes(n: int) -> bytes:
    """Bytes from the operating system's CSPRNG."""
    return os.urandom(n)


class Aead:
    """AES-256-GCM under one key; the object is built once per DEK and reused."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) != AEAD_KEY_LEN:
            raise MalformedEnvelope
        self._aead = AESGCM(key)

    def seal(self, nonce: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
        return self._aead.encrypt(nonce, plaintext, associated_data)

    def open(self, nonce: bytes, ciphertext: bytes, associated_data: bytes) -> bytes:
        try:
            return self._aead.decrypt(nonce, ciphertext, associated_data)
        except (InvalidTag, ValueError) as exc:
            raise TamperedEnvelope from exc


class SigningKey:
    """An Ed25519 private key; raw form is the 32-byte RFC 8032 seed."""

    __slots__ = ("_key",)

    def __init__(self, key: ed25519.Ed25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(ed25519.Ed25519PrivateKey.generate())

    @classmethod
    def from_raw(cls, raw: bytes) -> SigningKey:
        try:
            return cls(ed25519.Ed25519PrivateKey.from_private_bytes(raw))
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise KeyStoreError("signing key material is malformed") from exc

    def raw(self) -> bytes:
        return self._key.private_bytes_raw()

    def public_raw(self) -> bytes:
        return self._key.public_key().public_bytes_raw()

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


class VerifyKey:
    """An Ed25519 public key."""

    __slots__ = ("_key",)

    def __init__(self, raw: bytes) -> None:
        try:
            self._key = ed25519.Ed25519PublicKey.from_public_bytes(raw)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise MalformedEnvelope from exc

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


_HpkePublic = x25519.X25519PublicKey | hpke.MLKEM768X25519PublicKey
_HpkePrivate = x25519.X25519PrivateKey | hpke.MLKEM768X25519PrivateKey


class KemPublicKey:
    """A recipient's HPKE public key.

    Raw form: X25519 is the 32-byte u-coordinate; MLKEM768-X25519 is the 1184-byte ML-KEM-768
    encapsulation key followed by the 32-byte X25519 public key.
    """

    __slots__ = ("_key", "alg")

    def __init__(self, alg: KemAlg, raw: bytes) -> None:
        self.alg = alg
        if len(raw) != alg.public_len:
            raise MalformedEnvelope
        try:
            if alg is KemAlg.MLKEM768_X25519:
                self._key: _HpkePublic = hpke.MLKEM768X25519PublicKey(
                    mlkem.MLKEM768PublicKey.from_public_bytes(raw[:_MLKEM_PK_LEN]),
                    x25519.X25519PublicKey.from_public_bytes(raw[_MLKEM_PK_LEN:]),
                )
            else:
                self._key = x25519.X25519PublicKey.from_public_bytes(raw)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise MalformedEnvelope from exc


class KemPrivateKey:
    """A recipient's HPKE private key.

    Raw form: X25519 is the 32-byte scalar; MLKEM768-X25519 is the 64-byte ML-KEM-768
    seed (d || z, FIPS 203) followed by the 32-byte X25519 scalar.
    """

    __slots__ = ("_key", "_public_raw", "_raw", "alg")

    def __init__(self, alg: KemAlg, raw: bytes) -> None:
        if len(raw) != alg.private_len:
            raise KeyStoreError("encryption key material is malformed")
        self.alg = alg
        self._raw = raw
        try:
            if alg is KemAlg.MLKEM768_X25519:
                m = mlkem.MLKEM768PrivateKey.from_seed_bytes(raw[:_MLKEM_SEED_LEN])
                x = x25519.X25519PrivateKey.from_private_bytes(raw[_MLKEM_SEED_LEN:])
                self._key: _HpkePrivate = hpke.MLKEM768X25519PrivateKey(m, x)
                self._public_raw = (
                    m.public_key().public_bytes_raw() + x.public_key().public_bytes_raw()
                )
            else:
                xk = x25519.X25519PrivateKey.from_private_bytes(raw)
                self._key = xk
                self._public_raw = xk.public_key().public_bytes_raw()
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise KeyStoreError("encryption key material is malformed") from exc

    @classmethod
    def generate(cls, alg: KemAlg) -> KemPrivateKey:
        if alg is KemAlg.MLKEM768_X25519:
            return cls(alg, random_bytes(_MLKEM_SEED_LEN) + _x25519_scalar())
        return cls(alg, _x25519_scalar())

    def raw(self) -> bytes:
        return self._raw

    def public_raw(self) -> bytes:
        return self._public_raw


def _x25519_scalar() -> bytes:
    return x25519.X25519PrivateKey.generate().private_bytes_raw()


def hpke_seal(public: KemPublicKey, plaintext: bytes, info: bytes) -> bytes:
    """RFC 9180 base-mode single-shot seal; returns ``enc || ciphertext``."""
    return public.alg._suite().encrypt(plaintext, public._key, info=info)


def hpke_open(private: KemPrivateKey, sealed: bytes, info: bytes) -> bytes:
    """Open what :func:`hpke_seal` produced; any failure is :class:`TamperedEnvelope`."""
    if len(sealed) < private.alg.enc_len + AEAD_TAG_LEN:
        raise MalformedEnvelope
    try:
        return private.alg._suite().decrypt(sealed, private._key, info=info)
    except (InvalidTag, ValueError) as exc:
        raise TamperedEnvelope from exc


def scrypt_kek(passphrase: bytes, salt: bytes, *, n: int, r: int, p: int) -> bytes:
    """A 32-byte key-encryption key from a passphrase (scrypt, RFC 7914)."""
    return hashlib.scrypt(passphrase, salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=32)


# -- TLS certificates (the embedded Kafka's local CA and broker certificate) ------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    # Unencrypted PKCS#8: the JVM cannot read PBES2-encrypted keys, so the key's protection is
    # its file's mode (0600), as for every private key Accord keeps.
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


_CA_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)
_SERVER_AND_CLIENT = x509.ExtendedKeyUsage(
    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
)


def tls_ca(common_name: str, *, days: int) -> tuple[bytes, bytes]:
    """A self-signed CA (ECDSA P-256) that may sign leaf certificates only: (cert, key) PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def tls_leaf(
    ca_cert: bytes, ca_key: bytes, common_name: str, *, hosts: list[str], days: int
) -> tuple[bytes, bytes]:
    """A certificate for ``hosts`` signed by the CA, good for TLS servers and clients:
    (cert followed by the CA's, key) PEM."""
    issuer = x509.load_pem_x509_certificate(ca_cert)
    signer = serialization.load_pem_private_key(ca_key, password=None)
    if not isinstance(signer, ec.EllipticCurvePrivateKey):
        raise KeyStoreError("the TLS CA key is not an ECDSA key")
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
        )
        .sign(signer, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM) + ca_cert, _pem_key(key)


def tls_hosts(cert: bytes) -> list[str]:
    """The host names and addresses the (first) certificate in ``cert`` is for."""
    try:
        names = x509.load_pem_x509_certificate(cert).extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
    except x509.ExtensionNotFound:
        return []
    return [str(n.value) for n in names.value]


def tls_not_after(cert: bytes) -> dt.datetime:
    """When the (first) certificate in ``cert`` expires."""
    return x509.load_pem_x509_certificate(cert).not_valid_after_utc
