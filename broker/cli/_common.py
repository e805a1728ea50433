"""What several commands share: opening the keystore the settings name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.config import Settings

if TYPE_CHECKING:
    from broker.keys import FileKeyStore


def keystore(settings: Settings) -> FileKeyStore:
    from broker.keys import FileKeyStore  # cryptography loads only when a command needs keys

    return FileKeyStore(settings.keys_dir, settings.keystore.passphrase)
