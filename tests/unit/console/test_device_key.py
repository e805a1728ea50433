"""The known-device cookies' key: a secret of the owner's keystore, one per owner, that only
enrolment makes; a server (and add-user) reads it, or an older Accord's plain file as it is,
only keys init moves that file in, and a server without either uses a key of its own that it
says it will forget, and never writes anything."""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from broker.errors import ConfigError
from broker.keys import FileKeyStore
from broker.webauth import DeviceCookies, device_key, device_secret_name

SECRET = SecretStr("a console's passphrase")
LEGACY = "device-cookie.key"
CONSOLE = f"{device_secret_name('console')}.secret"


def _keys(path: Path) -> FileKeyStore:
    return FileKeyStore(path, SECRET, create=True, scrypt_n=2**10)


def _files(*folders: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for f in folders if f.exists() for p in f.rglob("*") if p.is_file()}


def _legacy(folder: Path, key: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LEGACY
    path.write_bytes(key)
    path.chmod(0o600)
    return path


def test_a_server_without_the_secret_writes_nothing_and_warns_once(tmp_path: Path) -> None:
    """Its key lasts as long as the process: devices are then unknown, the safe way to fail."""
    keys = _keys(tmp_path / "keys")
    users = tmp_path / "console" / "users.json"
    before = _files(tmp_path)
    with capture_logs() as logs:
        key = device_key(keys, "console", users)
    assert len(key) == 32
    assert _files(tmp_path) == before  # no secret in the keystore, no file beside the users
    [line] = logs
    assert line["log_level"] == "warning"
    assert line["event"] == "device_key_ephemeral"
    assert "'accord keys init --party console'" in line["why"]
    assert "restart" in line["why"]
    with capture_logs():
        assert device_key(keys, "console", users) != key  # not kept anywhere


def test_a_desks_warning_names_its_party_s_command(tmp_path: Path) -> None:
    with capture_logs() as logs:
        device_key(_keys(tmp_path / "k"), "desk:cog-tipton", tmp_path / "desk" / "users.json")
    assert "'accord keys init --party cog-tipton'" in logs[0]["why"]


def test_each_owner_s_secret_is_named_by_a_hash_of_its_name() -> None:
    for owner in ("console", "desk:cog-tipton", "desk:Sandwell.Coord:East_1"):
        name = device_secret_name(owner)
        assert name == f"device-cookie-{hashlib.sha256(owner.encode()).hexdigest()[:12]}"
        assert re.fullmatch(r"[a-z][a-z0-9-]{0,40}", name)  # as the keystore allows
    assert device_secret_name("console") == "device-cookie-93d8874c8c86"  # as the docs say


def test_enrolment_makes_the_secret_sealed_in_the_keystore_and_a_server_reads_it(
    tmp_path: Path,
) -> None:
    keys = _keys(tmp_path / "keys")
    users = tmp_path / "console" / "users.json"
    made = device_key(keys, "console", users, create=True)
    record = json.loads((tmp_path / "keys" / CONSOLE).read_text())
    assert record["protection"] == "aes-256-gcm"
    assert made.hex() not in json.dumps(record)
    assert not (tmp_path / "console" / LEGACY).exists()
    with capture_logs() as logs:
        assert device_key(FileKeyStore(tmp_path / "keys", SECRET), "console", users) == made
    assert logs == []
    assert device_key(keys, "console", users, create=True) == made  # found, not remade
    assert device_key(keys, "console", users, move=True) == made


def test_keys_init_moves_an_older_plain_file_in_with_the_same_bytes(tmp_path: Path) -> None:
    """A device cookie issued before the upgrade still proves its device after it."""
    keys = _keys(tmp_path / "keys")
    users = tmp_path / "console" / "users.json"
    old = os.urandom(32)
    plain = _legacy(users.parent, old)
    now = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
    issued = DeviceCookies(old, lifetime=timedelta(days=90), clock=lambda: now)
    cookie = issued.issue("ig.jo", "stamp-1")
    assert device_key(keys, "console", users, move=True) == old
    assert not plain.exists()
    key = device_key(keys, "console", users)
    assert key == old
    after = DeviceCookies(key, lifetime=timedelta(days=90), clock=lambda: now)
    assert after.device(cookie, "ig.jo", "stamp-1") is not None


def test_add_user_leaves_an_older_plain_file_and_the_keystore_as_they_are(
    tmp_path: Path,
) -> None:
    """add-user may run in a pod whose keystore lives in memory: a key moved in there, and
    the file deleted, would be gone at the next restart. The servers go on reading the file."""
    keys = _keys(tmp_path / "keys")
    users = tmp_path / "console" / "users.json"
    old = os.urandom(32)
    _legacy(users.parent, old)
    before = _files(tmp_path)
    assert device_key(keys, "console", users, create=True) == old
    assert _files(tmp_path) == before
    with capture_logs() as logs:
        assert device_key(keys, "console", users) == old
    assert logs == []


def test_a_keystore_made_for_elsewhere_gets_a_key_of_its_own(tmp_path: Path) -> None:
    """keys init --dir: the home's older file is not that keystore's, and stays where it is."""
    keys = _keys(tmp_path / "ceremony")
    users = tmp_path / "console" / "users.json"
    old = os.urandom(32)
    plain = _legacy(users.parent, old)
    made = device_key(keys, "console", None, move=True)
    assert made != old
    assert plain.read_bytes() == old
    assert device_key(keys, "console", None) == made


def test_a_console_and_a_desk_sharing_one_keystore_keep_different_keys(tmp_path: Path) -> None:
    """One host's keystore (the keys folder itself) serves both: each owner has its own key,
    and keys init moves each one's older file into its own."""
    keys = _keys(tmp_path / "keys")
    console_users = tmp_path / "console" / "users.json"
    desk_users = tmp_path / "desk" / "cog-tipton" / "users.json"
    console_old, desk_old = os.urandom(32), os.urandom(32)
    plains = [_legacy(console_users.parent, console_old), _legacy(desk_users.parent, desk_old)]
    assert device_key(keys, "console", console_users, move=True) == console_old
    assert device_key(keys, "desk:cog-tipton", desk_users, move=True) == desk_old
    assert not any(plain.exists() for plain in plains)
    assert device_key(keys, "console", console_users) == console_old
    assert device_key(keys, "desk:cog-tipton", desk_users) == desk_old
    made = device_key(keys, "desk:cog-oldbury", tmp_path / "desk" / "x" / "users.json", create=True)
    assert made not in (console_old, desk_old)


def test_a_server_reads_an_older_plain_file_as_it_is_and_never_moves_it(tmp_path: Path) -> None:
    keys = _keys(tmp_path / "keys")
    users = tmp_path / "console" / "users.json"
    old = os.urandom(32)
    plain = _legacy(users.parent, old)
    with capture_logs() as logs:
        assert device_key(keys, "console", users) == old
    assert logs == []
    assert plain.read_bytes() == old
    assert not (tmp_path / "keys" / CONSOLE).exists()


def test_an_older_file_left_beside_the_owner_s_own_secret(tmp_path: Path) -> None:
    """The keystore's key is the one used. keys init removes a file holding the same bytes (a
    crash after the move), add-user and servers leave it; one holding another key is left as
    it is, read by nothing."""
    keys = _keys(tmp_path / "keys")
    users = tmp_path / "console" / "users.json"
    made = device_key(keys, "console", users, create=True)
    plain = _legacy(users.parent, made)
    assert device_key(keys, "console", users) == made
    assert device_key(keys, "console", users, create=True) == made
    assert plain.exists()
    assert device_key(keys, "console", users, move=True) == made
    assert not plain.exists()
    other = _legacy(users.parent, os.urandom(32))
    assert device_key(keys, "console", users, move=True) == made
    assert device_key(keys, "console", users) == made
    assert other.exists()


def test_a_damaged_older_file_is_a_clear_error(tmp_path: Path) -> None:
    keys = _keys(tmp_path / "keys")
    users = tmp_path / "console" / "users.json"
    _legacy(users.parent, b"short")
    for flags in ({}, {"create": True}, {"move": True}):
        with pytest.raises(ConfigError, match="not a device-cookie key"):
            device_key(keys, "console", users, **flags)
    assert not (tmp_path / "keys" / CONSOLE).exists()
