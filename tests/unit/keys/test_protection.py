"""Keystores are encrypted by default; an unencrypted one is asked for, and can be
encrypted in place later (``FileKeyStore.protect``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from broker.config import KeyProtection, KeystoreSettings, Settings
from broker.errors import ConfigError, KeyStoreError, UsageError
from broker.keys import FileKeyStore

SECRET = SecretStr("correct horse battery staple")


@pytest.fixture(autouse=True)
def _default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACCORD_KEYSTORE__PROTECTION", raising=False)
    monkeypatch.delenv("ACCORD_KEYSTORE__PASSPHRASE", raising=False)


def test_without_a_passphrase_the_settings_refuse_to_give_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no keystore passphrase") as caught:
        Settings(home=tmp_path).keystore_passphrase()
    assert "ACCORD_KEYSTORE__PROTECTION=none" in str(caught.value)
    assert "the demo's" not in str(caught.value)
    given = Settings(home=tmp_path, keystore=KeystoreSettings(passphrase=SECRET))
    assert given.keystore_passphrase() == SECRET
    plain = Settings(home=tmp_path, keystore=KeystoreSettings(protection=KeyProtection.NONE))
    assert plain.keystore_passphrase() is None


def test_protect_keeps_every_key_and_the_linkage_key_and_encrypts_them(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "k", create=True)
    store.ensure_party("wmp")
    linkage = store.set_linkage_key()
    signature = store.current_signing_key("wmp")
    store.protect(SECRET, scrypt_n=2**10)
    assert store.protected
    reopened = FileKeyStore(tmp_path / "k", SECRET)
    assert reopened.linkage_key() == linkage
    assert reopened.current_signing_key("wmp").info == signature.info
    key_id = reopened.current_encryption_key("wmp").key_id
    assert reopened.decryption_key(key_id) is not None
    raw = json.loads((tmp_path / "k" / "linkage.key").read_text())
    assert raw["protection"] == "aes-256-gcm"
    assert "nonce" in raw
    with pytest.raises(KeyStoreError, match="passphrase-protected"):
        FileKeyStore(tmp_path / "k")
    with pytest.raises(UsageError, match="protected already"):
        reopened.protect(SECRET)


def test_protect_refuses_a_private_key_the_directory_does_not_list(tmp_path: Path) -> None:
    """Copied as it is, it would stay in the clear inside the 'protected' store."""
    store = FileKeyStore(tmp_path / "k", create=True)
    store.ensure_party("wmp")
    stray = tmp_path / "k" / "private" / "stray.key"
    stray.write_text("{}")
    stray.chmod(0o600)
    with pytest.raises(KeyStoreError, match="not in the directory"):
        store.protect(SECRET, scrypt_n=2**10)
    assert not store.protected
    assert FileKeyStore(tmp_path / "k").keys()
    assert not (tmp_path / ".k.protecting").exists()


def test_protect_refuses_to_run_over_an_interrupted_one(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "k", create=True)
    store.ensure_party("wmp")
    (tmp_path / ".k.protecting").mkdir()
    with pytest.raises(KeyStoreError, match="interrupted 'keys protect'"):
        store.protect(SECRET, scrypt_n=2**10)
    assert not store.protected
