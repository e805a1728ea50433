"""Keystores for the key-directory tests: wmp's, cog-tipton's and the IG officer's, made
without passphrases (a module may define its own ``root`` with other parties)."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.config import KemSuite
from broker.keys import FileKeyStore, init_keystores

PARTIES = ["wmp", "cog-tipton"]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    init_keystores(tmp_path / "keys", PARTIES, passphrase=None, kem=KemSuite.X25519)
    return tmp_path / "keys"


def keystore(root: Path, principal: str) -> FileKeyStore:
    """``principal``'s keystore under ``root``."""
    return FileKeyStore(root / principal)
