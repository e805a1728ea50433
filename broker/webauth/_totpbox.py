"""Sealing the TOTP secrets of a users file under a key from its owner's keystore.

A TOTP secret mints codes, so the users file must not hold it readable: a backup or a
misconfigured volume would hand out every account's second factor. Each secret is sealed
with AES-256-GCM (``broker.crypto.Aead``) under a 32-byte secret of the owner's keystore,
``users-totp.secret`` (``FileKeyStore.local_secret``: made on first use, itself sealed under
the keystore's passphrase). The associated data names the file's owner (``console``,
``desk:PARTY``) and the account, so a sealed secret copied to another account, or into
another owner's file, does not open.

Only enrolment makes that secret (``accord keys init``, ``console add-user``, ``desk
add-user``, the demo: ``from_keystore(..., create=True)``). Everything else opens the box
with ``create=False``: a server whose keystore has no such secret gets a box without a key,
which seals nothing and opens nothing, rather than a key made in a pod's memory that the next
restart would lose, and every officer's second factor with it.

In the file: ``"secret_sealed": "v1:" + base64(nonce || ciphertext || tag)``.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Final

from broker.crypto import AEAD_NONCE_LEN, Aead, random_bytes
from broker.errors import ConfigError, EnvelopeError, KeyNotFound

# Named in broker.keys: ``accord keys init`` makes it without the web apps' dependencies.
from broker.keys import TOTP_SECRET_NAME

if TYPE_CHECKING:
    from pathlib import Path

    from broker.keys import FileKeyStore

__all__ = ["TOTP_SECRET_NAME", "TotpBox"]

_VERSION: Final = "v1:"
_AD: Final = b"accord/users-totp/v1\x00"


class TotpBox:
    """Seals and opens the TOTP secrets of one owner's users file.

    ``key`` None is a box for a keystore without a ``users-totp`` secret: it seals nothing
    and opens nothing (``keyed`` is False), each refusal naming the keystore. One made by
    :meth:`from_keystore` looks again each time it is asked, so a server started before
    ``add-user`` made the secret opens what ``add-user`` sealed.
    """

    __slots__ = ("_aead", "_keys", "keystore", "owner")

    def __init__(self, key: bytes | None, owner: str, *, keystore: Path | None = None) -> None:
        if (key is not None and len(key) != 32) or not owner or "\x00" in owner:
            raise ConfigError("a TOTP box needs a 32-byte key and its owner's name")
        self._aead = None if key is None else Aead(key)
        self._keys: FileKeyStore | None = None  # where to look again while there is no key
        # Whose accounts these are: also the users file's owner (``UserFile.owner``).
        self.owner = owner
        self.keystore = keystore  # where the key is kept, for messages

    @classmethod
    def from_keystore(cls, keys: FileKeyStore, owner: str, *, create: bool) -> TotpBox:
        """The box of ``owner``'s users file, keyed by its keystore's ``users-totp`` secret.

        ``create`` (enrolment only) makes the secret if the keystore has none; without it, a
        keystore with none gives a box without a key.
        """
        try:
            key: bytes | None = keys.local_secret(TOTP_SECRET_NAME, create=create)
        except KeyNotFound:
            key = None
        box = cls(key, owner, keystore=keys.path)
        if key is None:
            box._keys = keys
        return box

    @property
    def keyed(self) -> bool:
        """Whether the keystore has the secret: False, nothing can be sealed or opened."""
        return self._keyed_now() is not None

    def _keyed_now(self) -> Aead | None:
        """The box's AEAD, looking in the keystore again if it had no secret before (never
        making one)."""
        if self._aead is None and self._keys is not None:
            try:
                self._aead = Aead(self._keys.local_secret(TOTP_SECRET_NAME, create=False))
            except KeyNotFound:
                return None
            self._keys = None
        return self._aead

    def where(self) -> str:
        """The keystore, as messages name it."""
        return f"the keystore at {self.keystore}" if self.keystore else f"{self.owner}'s keystore"

    def __repr__(self) -> str:
        return f"TotpBox(owner={self.owner!r})"

    def _ad(self, name: str) -> bytes:
        return _AD + self.owner.encode() + b"\x00" + name.encode()

    def seal(self, name: str, secret: str) -> str:
        """``secret`` (base32) sealed to account ``name`` of this owner, as the file keeps it."""
        aead = self._keyed_now()
        if aead is None:
            raise ConfigError(
                f"{self.where()} has no users-totp secret to seal a second factor with: make it "
                f"with 'accord keys init --party {_party(self.owner)}' where the keystore is kept"
            )
        nonce = random_bytes(AEAD_NONCE_LEN)
        sealed = nonce + aead.seal(nonce, secret.encode("ascii"), self._ad(name))
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
        aead = self._keyed_now()
        if aead is None:
            raise ConfigError(
                f"the second factor of {name} is sealed, and {self.where()} has no users-totp "
                "secret to open it: restore the keystore that sealed it, or remake it with "
                "add-user --reset"
            )
        try:
            raw = base64.b64decode(sealed.removeprefix(_VERSION), validate=True)
            # Too short to hold a nonce and a tag: fails to open like any other damage.
            nonce = raw[:AEAD_NONCE_LEN].ljust(AEAD_NONCE_LEN, b"\0")
            plain = aead.open(nonce, raw[AEAD_NONCE_LEN:], self._ad(name))
            return plain.decode("ascii")
        except (binascii.Error, EnvelopeError, UnicodeDecodeError):
            raise ConfigError(
                f"the second factor of {name} does not open with the users-totp secret of "
                f"{self.where()}: it was sealed for another account, file or keystore, "
                "or altered; remake it with add-user --reset"
            ) from None


def _party(owner: str) -> str:
    """The party whose keystore keeps ``owner``'s secret: ``console``, or the desk's party."""
    return owner.removeprefix("desk:")
