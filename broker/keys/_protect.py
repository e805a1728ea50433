"""How a keystore protects its secrets: none, or AES-256-GCM under a passphrase-derived key.

With a passphrase, a key-encryption key is derived once per store with scrypt (salt and
parameters in ``keystore.json``, plus a check value so a wrong passphrase is reported at
once); each secret is then wrapped with AES-256-GCM, bound by associated data to what it is
(a key's id, party and algorithm; the linkage key's label), so wrapped secrets cannot be
swapped between files.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any, Final

from pydantic import SecretStr

from broker.crypto import AEAD_NONCE_LEN, Aead, random_bytes, scrypt_kek
from broker.errors import EnvelopeError, KeyStoreError

__all__ = ["STORE_FORMAT", "Protector"]

STORE_FORMAT: Final = "accord-keystore/v1"
_CHECK_PLAINTEXT: Final = b"accord keystore passphrase check"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: object, where: Path) -> bytes:
    if not isinstance(text, str):
        raise KeyStoreError(f"keystore file {where} is not in the expected format")
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise KeyStoreError(f"keystore file {where} is not in the expected format") from exc


class Protector:
    """Wraps and unwraps a store's secrets with its key-encryption key (if any)."""

    def __init__(self, kek: bytes | None) -> None:
        self._kek = kek

    @property
    def protected(self) -> bool:
        return self._kek is not None

    @staticmethod
    def new_meta(passphrase: SecretStr | None, scrypt_n: int) -> dict[str, Any]:
        """``keystore.json`` for a new store."""
        if passphrase is None:
            return {"format": STORE_FORMAT, "protection": "none"}
        salt = random_bytes(16)
        params = {"n": scrypt_n, "r": 8, "p": 1}
        kek = scrypt_kek(passphrase.get_secret_value().encode("utf-8"), salt, **params)
        nonce = random_bytes(AEAD_NONCE_LEN)
        check = Aead(kek).seal(nonce, _CHECK_PLAINTEXT, STORE_FORMAT.encode())
        return {
            "format": STORE_FORMAT,
            "protection": "scrypt",
            "salt": b64(salt),
            "scrypt": params,
            "check": b64(nonce + check),
        }

    @classmethod
    def unlock(
        cls, meta: dict[str, Any], where: Path, store: Path, passphrase: SecretStr | None
    ) -> Protector:
        if meta.get("format") != STORE_FORMAT:
            raise KeyStoreError(f"keystore file {where} is not in the expected format")
        if meta.get("protection") == "none":
            if passphrase is not None:
                raise KeyStoreError(f"the keystore at {store} has no passphrase, but one was given")
            return cls(None)
        if meta.get("protection") != "scrypt":
            raise KeyStoreError(f"keystore file {where} is not in the expected format")
        if passphrase is None:
            raise KeyStoreError(
                f"the keystore at {store} is passphrase-protected; set ACCORD_KEYSTORE__PASSPHRASE"
            )
        params = meta.get("scrypt")
        if not isinstance(params, dict) or set(params) != {"n", "r", "p"}:
            raise KeyStoreError(f"keystore file {where} is not in the expected format")
        try:
            kek = scrypt_kek(
                passphrase.get_secret_value().encode("utf-8"),
                unb64(meta.get("salt"), where),
                n=int(params["n"]),
                r=int(params["r"]),
                p=int(params["p"]),
            )
        except (TypeError, ValueError) as exc:
            raise KeyStoreError(f"keystore file {where} has unusable scrypt parameters") from exc
        check = unb64(meta.get("check"), where)
        try:
            Aead(kek).open(check[:AEAD_NONCE_LEN], check[AEAD_NONCE_LEN:], STORE_FORMAT.encode())
        except EnvelopeError as exc:
            raise KeyStoreError(f"wrong passphrase for the keystore at {store}") from exc
        return cls(kek)

    def wrap(self, raw: bytes, ad: bytes) -> dict[str, str]:
        """The record fields that hold ``raw``: as it is, or sealed under the store's key."""
        if self._kek is None:
            return {"protection": "none", "key": b64(raw)}
        nonce = random_bytes(AEAD_NONCE_LEN)
        sealed = Aead(self._kek).seal(nonce, raw, ad)
        return {"protection": "aes-256-gcm", "nonce": b64(nonce), "key": b64(sealed)}

    def unwrap(self, record: dict[str, Any], ad: bytes, where: Path) -> bytes:
        raw = unb64(record.get("key"), where)
        expected = "none" if self._kek is None else "aes-256-gcm"
        if record.get("protection") != expected:
            raise KeyStoreError(f"private key file {where} has the wrong protection")
        if self._kek is None:
            return raw
        try:
            return Aead(self._kek).open(unb64(record.get("nonce"), where), raw, ad)
        except EnvelopeError as exc:
            raise KeyStoreError(f"private key file {where} cannot be unwrapped") from exc
