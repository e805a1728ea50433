"""Keystores are encrypted by default; an unencrypted one is asked for, and can be
encrypted in place later (``FileKeyStore.protect``)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from broker.config import KemSuite, KeyProtection, KeystoreSettings, Settings, load_settings
from broker.errors import ConfigError, KeyStoreError, UsageError
from broker.keys import (
    FileKeyStore,
    _secrets,
    init_keystores,
    keystores_under,
    protect_keystores,
)

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


@pytest.mark.parametrize("blank", ["", "   ", "\n"])
def test_a_blank_passphrase_is_refused_not_taken_for_one(
    blank: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ACCORD_KEYSTORE__PASSPHRASE="$PASS"` with PASS unset must not seal keys under nothing."""
    monkeypatch.setenv("ACCORD_KEYSTORE__PASSPHRASE", blank)
    with pytest.raises(ConfigError, match=r"ACCORD_KEYSTORE__PASSPHRASE: .*is empty"):
        load_settings()


def test_no_secret_is_ever_in_the_clear_in_the_copy_being_sealed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy is 0700 with 0600 files, and holds only sealed secrets, even before the swap."""
    store = FileKeyStore(tmp_path / "k", create=True)
    store.ensure_party("wmp")
    store.set_linkage_key()
    store.local_secret("desk-linkage")
    clear = [json.loads(p.read_text())["key"] for p in (tmp_path / "k").rglob("*.key")]
    clear += [json.loads((tmp_path / "k" / "desk-linkage.secret").read_text())["key"]]
    seen: list[Path] = []
    real_sync = _secrets._sync_tree

    def inspect(staging: Path) -> None:
        assert stat.S_IMODE(staging.stat().st_mode) == 0o700
        for path in staging.rglob("*"):
            assert stat.S_IMODE(path.stat().st_mode) in (0o600, 0o700), path
            if path.is_file():
                assert not any(c in path.read_text() for c in clear), path
                seen.append(path.relative_to(staging))
        real_sync(staging)

    monkeypatch.setattr(_secrets, "_sync_tree", inspect)
    store.protect(SECRET, scrypt_n=2**10)
    assert {str(p) for p in seen} >= {"keystore.json", "directory.json", "linkage.key",
                                      "desk-linkage.secret"}  # fmt: skip


def test_a_linked_keystore_is_sealed_where_it_is_and_the_link_still_leads_to_it(
    tmp_path: Path,
) -> None:
    store = FileKeyStore(tmp_path / "real" / "k", create=True)
    store.ensure_party("wmp")
    (tmp_path / "link").symlink_to(tmp_path / "real" / "k")
    FileKeyStore(tmp_path / "link").protect(SECRET, scrypt_n=2**10)
    assert (tmp_path / "link").is_symlink()
    sealed = json.loads((tmp_path / "real" / "k" / "keystore.json").read_text())
    assert sealed["protection"] == "scrypt"
    assert FileKeyStore(tmp_path / "link", SECRET).private_parties() == ["wmp"]
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["k"]


def test_an_interrupted_protect_stops_the_next_until_someone_has_looked(tmp_path: Path) -> None:
    """Between the renames the store's folder is missing: a rerun must not 'protect' the
    old copy, nor the demo make a new store (and linkage key) in its place."""
    for name in ("wmp", "worker"):
        FileKeyStore(tmp_path / name, create=True).ensure_party(name)
    (tmp_path / "worker").rename(tmp_path / ".worker.unprotected")
    assert keystores_under(tmp_path) == [tmp_path / "wmp"]
    with pytest.raises(KeyStoreError, match="interrupted 'keys protect'"):
        protect_keystores(tmp_path, SECRET)
    assert not FileKeyStore(tmp_path / "wmp").protected


def test_no_store_is_made_in_the_place_of_one_an_interrupted_protect_took_away(
    tmp_path: Path,
) -> None:
    """Between the renames the worker's folder is missing: `keys init`, the demo (with a
    passphrase set) or any command must not make a new worker store, and linkage key, there."""
    root = tmp_path / "keys"
    init_keystores(root, ["wmp"], passphrase=None, kem=KemSuite.X25519)
    (root / "worker").rename(root / ".worker.protecting")
    with pytest.raises(KeyStoreError, match=r"\.worker\.protecting is left from an interrupted"):
        init_keystores(root, ["wmp"], passphrase=None, kem=KemSuite.X25519)
    with pytest.raises(KeyStoreError, match=r"\.worker\.protecting is left from an interrupted"):
        FileKeyStore(root / "worker", create=True)
    with pytest.raises(KeyStoreError, match="interrupted 'keys protect'"):
        FileKeyStore(root / "worker")  # not "no keystore: run 'accord keys init'"
    assert not (root / "worker").exists()
