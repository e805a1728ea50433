"""The demo's keystores are sealed under a passphrase, as a deployment's are."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from broker.cli._demo_keys import demo_keystores
from broker.config import KeyProtection, KeystoreSettings, Settings
from broker.errors import ConfigError, KeyStoreError
from broker.keys import FileKeyStore, init_keystores

PARTIES = ["wmp", "hub-a"]


@pytest.fixture(autouse=True)
def _default(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo as a user runs it: without the tests' own opt-out (tests/conftest.py)."""
    monkeypatch.delenv("ACCORD_KEYSTORE__PROTECTION", raising=False)
    monkeypatch.delenv("ACCORD_KEYSTORE__PASSPHRASE", raising=False)


def _protections(root: Path) -> set[str]:
    return {json.loads(m.read_text())["protection"] for m in root.glob("*/keystore.json")}


def test_a_fresh_demo_makes_a_private_passphrase_once_and_seals_every_keystore(
    tmp_path: Path,
) -> None:
    settings = Settings(home=tmp_path)
    opened, made = demo_keystores(settings, PARTIES)
    assert made == tmp_path / "keystore-passphrase"
    assert stat.S_IMODE(made.stat().st_mode) == 0o600
    assert _protections(tmp_path / "keys") == {"scrypt"}
    passphrase = opened.keystore_passphrase()
    assert passphrase is not None
    assert len(passphrase.get_secret_value()) >= 32
    assert FileKeyStore(opened.keystore_path("wmp"), passphrase).private_parties() == ["wmp"]
    # Run again: the same passphrase, the same keys.
    again, _ = demo_keystores(Settings(home=tmp_path), PARTIES)
    assert again.keystore.passphrase == passphrase
    # Other commands are told where it is, and refused without it.
    with pytest.raises(ConfigError, match=r"the demo.s is .*keystore-passphrase"):
        Settings(home=tmp_path).keystore_passphrase()


def test_keystores_an_older_demo_left_unencrypted_are_sealed_in_place(tmp_path: Path) -> None:
    init_keystores(tmp_path / "keys", PARTIES, passphrase=None, kem=Settings().envelope.kem)
    before = FileKeyStore(tmp_path / "keys" / "wmp").keys()
    opened, _ = demo_keystores(Settings(home=tmp_path), PARTIES)
    assert _protections(tmp_path / "keys") == {"scrypt"}
    assert FileKeyStore(opened.keystore_path("wmp"), opened.keystore.passphrase).keys() == before


def test_the_demo_uses_a_passphrase_it_is_given_and_makes_no_file(tmp_path: Path) -> None:
    given = KeystoreSettings(passphrase=SecretStr("given passphrase"))
    opened, made = demo_keystores(Settings(home=tmp_path, keystore=given), PARTIES)
    assert made is None
    assert not (tmp_path / "keystore-passphrase").exists()
    assert opened.keystore.passphrase == given.passphrase
    assert _protections(tmp_path / "keys") == {"scrypt"}


def test_unencrypted_demo_keystores_only_when_asked_for(tmp_path: Path) -> None:
    plain = KeystoreSettings(protection=KeyProtection.NONE)
    _, made = demo_keystores(Settings(home=tmp_path, keystore=plain), PARTIES)
    assert made is None
    assert not (tmp_path / "keystore-passphrase").exists()
    assert _protections(tmp_path / "keys") == {"none"}


def test_a_passphrase_file_others_can_read_is_refused(tmp_path: Path) -> None:
    (tmp_path / "keystore-passphrase").write_text("a passphrase\n")
    (tmp_path / "keystore-passphrase").chmod(0o644)
    with pytest.raises(KeyStoreError, match="readable by others"):
        demo_keystores(Settings(home=tmp_path), PARTIES)
    assert not (tmp_path / "keys").exists()


def test_a_passphrase_file_that_is_not_text_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "keystore-passphrase").write_bytes(b"\xff\xfe\x00")
    (tmp_path / "keystore-passphrase").chmod(0o600)
    with pytest.raises(KeyStoreError, match="not UTF-8 text"):
        demo_keystores(Settings(home=tmp_path), PARTIES)
