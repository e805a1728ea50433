"""Sealing the TOTP secrets of a users file under a key from its owner's keystore.

A TOTP secret mints codes, so the users file must not hold it readable: a backup or a
misconfigured volume would hand out every account's second factor. Each secret is sealed
with AES-256-GCM (``broker.crypto.Aead``) under a 32-byte secret of the owner's keystore,
``users-totp.secret`` (``FileKeyStore.local_secret``: made on first use, itself sealed under
the keystore's passphrase). The associated data names the file's owner (``console``,
``desk:PARTY``) and the account, so a sealed secret copied to another account, or into
another owner's file, does not open.

In the file: ``"secret_sealed": "v1:" + base64(nonce || ciphertext || tag)``.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Final

from broker.crypto import AEAD_NONCE_LEN, Aead, random_bytes
from broker.errors import ConfigError, EnvelopeError

if TYPE_CHECKING:
    from broker.keys import FileKeyStore

__all__ = ["TOTP_SECRET_NAME", "TotpBox"]

TOTP_SECRET_NAME: Final = "users-totp"  # noqa: S105  # the keystore secret's name, not a secret
_VERSION: Final = "v1:"
_AD: Final = b"accord/users-totp/v1\x00"


class TotpBox:
    """Seals and opens the TOTP secrets of one owner's users file."""

    __slots__ = ("_aead", "owner")

    def __init__(self, key: bytes, owner: str) -> None:
        if len(key) != 32 or not owner or "\x00" in owner:
            raise ConfigError("a TOTP box needs a 32-byte key and its owner's name")
        self._aead = Aead(key)
        # Whose accounts these are: also the users file's owner (``UserFile.owner``).
        self.owner = owner

    @classmethod
    def from_keystore(cls, keys: FileKeyStore, owner: str) -> TotpBox:
        """The box of ``owner``'s users file, keyed by its keystore's ``users-totp`` secret."""
        return cls(keys.local_secret(TOTP_SECRET_NAME), owner)

    def __repr__(self) -> str:
        return f"TotpBox(owner={self.owner!r})"

    def _ad(self, name: str) -> bytes:
        return _AD + self.owner.encode() + b"\x00" + name.encode()

    def seal(self, name: str, secret: str) -> str:
        """``secret`` (base32) sealed to account ``name`` of this owner, as the file keeps it."""
        nonce = random_bytes(AEAD_NONCE_LEN)
        sealed = nonce + self._aead.seal(nonce, secret.encode("ascii"), self._ad(name))
        return _VERSION + base64.b64encode(sealed).decode("ascii")

    def open(self, name: str, sealed: str) -> str:
        """The base32 secret that :meth:`seal` sealed to ``name``; ``ConfigError`` otherwise.

        The error says which account, never anything about the secret: the key, the owner or
        the account is not the one it was sealed with, or the text was altered.
        """
        if not sealed.startswith(_VERSION):
            raise ConfigError(
                f"the second factor of {name} is sealed in a format this Accord does not read"
            )
        try:
            raw = base64.b64decode(sealed.removeprefix(_VERSION), validate=True)
            # Too short to hold a nonce and a tag: fails to open like any other damage.
            nonce = raw[:AEAD_NONCE_LEN].ljust(AEAD_NONCE_LEN, b"\0")
            plain = self._aead.open(nonce, raw[AEAD_NONCE_LEN:], self._ad(name))
            return plain.decode("ascii")
        except (binascii.Error, EnvelopeError, UnicodeDecodeError):
            raise ConfigError(
                f"the second factor of {name} does not open with the users-totp secret of "
                f"{self.owner}'s keystore: it was sealed for another account, file or keystore, "
                "or altered; remake it with add-user --reset"
            ) from None
