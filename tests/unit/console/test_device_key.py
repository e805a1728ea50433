"""The known-device cookies' key: a secret of the owner's keystore that only enrolment makes;
a server reads it, or an older Accord's plain file as it is, or uses one of its own that it
says it will forget, and never writes anything."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from broker.errors import ConfigError
from broker.keys import FileKeyStore
from broker.webauth import DeviceCookies, device_key

SECRET = SecretStr("a console's passphrase")
LEGACY = "device-cookie.key"


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


def test_enrolment_makes_the_secret_sealed_in_the_keystore_and_a_server_reads_it(
    tmp_path: Path,
) -> None:
    keys = _keys(tmp_path / "keys")
    users = tmp_path / "console" / "users.json"
    made = device_key(keys, "console", users, create=True)
    record = json.loads((tmp_path / "keys" / "device-cookie.secret").read_text())
    assert record["protection"] == "aes-256-gcm"
    assert made.hex() not in json.dumps(record)
    assert not (tmp_path / "console" / LEGACY).exists()
    with capture_logs() as logs:
        assert device_key(FileKeyStore(tmp_path / "keys", SECRET), "console", users) == made
    assert logs == []
    assert device_key(keys, "console", users, create=True) == made  # found, not remade


def test_enrolment_moves_an_older_plain_file_in_with_the_same_bytes(tmp_path: Path) -> None:
    """A device cookie issued before the upgrade still proves its device after it."""
    keys = _keys(tmp_path / "keys")
    users = tmp_path / "console" / "users.json"
    old = os.urandom(32)
    plain = _legacy(users.parent, old)
    now = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
    issued = DeviceCookies(old, lifetime=timedelta(days=90), clock=lambda: now)
    cookie = issued.issue("ig.jo", "stamp-1")
    assert device_key(keys, "console", users, create=True) == old
    assert not plain.exists()
    key = device_key(keys, "console", users)
    assert key == old
    after = DeviceCookies(key, lifetime=timedelta(days=90), clock=lambda: now)
    assert after.device(cookie, "ig.jo", "stamp-1") is not None


def test_a_server_reads_an_older_plain_file_as_it_is_and_never_moves_it(tmp_path: Path) -> None:
    keys = _keys(tmp_path / "keys")
    users = tmp_path / "console" / "users.json"
    old = os.urandom(32)
    plain = _legacy(users.parent, old)
    with capture_logs() as logs:
        assert device_key(keys, "console", users) == old
    assert logs == []
    assert plain.read_bytes() == old
    assert not (tmp_path / "keys" / "device-cookie.secret").exists()


def test_an_older_file_left_beside_the_keystores_secret(tmp_path: Path) -> None:
    """The keystore's key is the one used. Enrolment removes a file holding the same bytes (a
    crash after the move); one holding another key is left as it is, read by nothing."""
    keys = _keys(tmp_path / "keys")
    users = tmp_path / "console" / "users.json"
    made = device_key(keys, "console", users, create=True)
    plain = _legacy(users.parent, made)
    assert device_key(keys, "console", users) == made
    assert plain.exists()  # a server leaves it
    assert device_key(keys, "console", users, create=True) == made
    assert not plain.exists()
    other = _legacy(users.parent, os.urandom(32))
    assert device_key(keys, "console", users, create=True) == made
    assert device_key(keys, "console", users) == made
    assert other.exists()


def test_a_damaged_older_file_is_a_clear_error(tmp_path: Path) -> None:
    keys = _keys(tmp_path / "keys")
    users = tmp_path / "console" / "users.json"
    _legacy(users.parent, b"short")
    for create in (False, True):
        with pytest.raises(ConfigError, match="not a device-cookie key"):
            device_key(keys, "console", users, create=create)
    assert not (tmp_path / "keys" / "device-cookie.secret").exists()
