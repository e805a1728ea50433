"""The desk's linkage secret: 32 random bytes in the party's keystore, sealed under its
passphrase, made once by enrolment, the same for every desk process; a server only reads it
(or an older desk's plain file, as it is) and refuses to start without it; enrolment moves an
older desk's plain file in."""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from pydantic import SecretStr

from broker.desk import LINKAGE_FILE, child_key, desk_linkage_key
from broker.errors import ConfigError, KeyStoreError
from broker.keys import FileKeyStore

SECRET = SecretStr("a desk's passphrase")


def _sealed(path: Path) -> FileKeyStore:
    return FileKeyStore(path, SECRET, create=True, scrypt_n=2**10)


def test_enrolment_makes_the_secret_once_sealed_in_the_keystore_and_servers_read_it(
    tmp_path: Path,
) -> None:
    keys = _sealed(tmp_path / "k")
    first = desk_linkage_key(keys, create=True)
    assert len(first) == 32
    record = json.loads((tmp_path / "k" / "desk-linkage.secret").read_text())
    assert record["protection"] == "aes-256-gcm"
    assert first.hex() not in json.dumps(record)
    assert desk_linkage_key(keys, create=True) == first
    assert desk_linkage_key(FileKeyStore(tmp_path / "k", SECRET)) == first
    assert not (tmp_path / "k" / LINKAGE_FILE).exists()


def test_a_server_without_the_secret_refuses_in_one_line_and_makes_none(tmp_path: Path) -> None:
    """A secret a server made would key children unlike the other desk process, or be lost
    with a pod's memory: the command that makes it is named instead."""
    keys = _sealed(tmp_path / "k")
    before = sorted(p.name for p in (tmp_path / "k").iterdir())
    with pytest.raises(ConfigError) as refused:
        desk_linkage_key(keys, party="cog-tipton")
    message = str(refused.value)
    assert "\n" not in message
    assert str(tmp_path / "k") in message
    assert "'accord keys init --party cog-tipton'" in message
    assert sorted(p.name for p in (tmp_path / "k").iterdir()) == before
    assert not (tmp_path / "k" / "desk-linkage.secret").exists()


def test_a_server_reads_an_older_desks_plain_file_as_it_is_and_never_moves_it(
    tmp_path: Path,
) -> None:
    keys = _sealed(tmp_path / "k")
    plain = tmp_path / "k" / LINKAGE_FILE
    old = os.urandom(32)
    plain.write_bytes(old)
    plain.chmod(0o600)
    assert desk_linkage_key(keys) == old
    assert plain.read_bytes() == old
    assert not (tmp_path / "k" / "desk-linkage.secret").exists()


def _in_a_process(path: Path) -> bytes:
    return desk_linkage_key(FileKeyStore(path, SECRET), create=True)


def test_enrolments_running_together_agree_on_one_secret(tmp_path: Path) -> None:
    _sealed(tmp_path / "k")
    with ProcessPoolExecutor(max_workers=4) as pool:
        keys = list(pool.map(_in_a_process, [tmp_path / "k"] * 8))
    assert len(set(keys)) == 1
    assert not list((tmp_path / "k").glob(".*.tmp"))


def test_enrolment_moves_an_older_desks_plain_file_into_the_keystore(tmp_path: Path) -> None:
    """Every child stays keyed as before: the secret is the same bytes, now sealed."""
    keys = _sealed(tmp_path / "k")
    plain = tmp_path / "k" / LINKAGE_FILE
    old = os.urandom(32)
    plain.write_bytes(old)
    plain.chmod(0o600)
    assert desk_linkage_key(keys, create=True) == old
    assert not plain.exists()
    assert desk_linkage_key(keys) == old


def test_a_plain_file_left_after_a_move_must_agree_with_the_keystore(tmp_path: Path) -> None:
    """A crash between sealing and removing the file leaves both: they agree, and enrolment
    removes the file (a server leaves it); a file holding another secret is refused by both
    rather than keying children two ways."""
    keys = _sealed(tmp_path / "k")
    plain = tmp_path / "k" / LINKAGE_FILE
    sealed = desk_linkage_key(keys, create=True)
    plain.write_bytes(sealed)
    plain.chmod(0o600)
    assert desk_linkage_key(keys) == sealed
    assert plain.exists()
    assert desk_linkage_key(keys, create=True) == sealed
    assert not plain.exists()
    plain.write_bytes(os.urandom(32))
    plain.chmod(0o600)
    with pytest.raises(KeyStoreError, match="does not hold the secret expected"):
        desk_linkage_key(keys, create=True)
    with pytest.raises(KeyStoreError, match="keyed two ways"):
        desk_linkage_key(keys)


def test_a_plain_file_readable_by_others_or_of_the_wrong_size_is_refused(tmp_path: Path) -> None:
    keys = _sealed(tmp_path / "k")
    plain = tmp_path / "k" / LINKAGE_FILE
    plain.write_bytes(os.urandom(32))
    os.chmod(plain, 0o644)  # noqa: PTH101  # the test needs exactly this mode
    with pytest.raises(KeyStoreError, match="0600"):
        desk_linkage_key(keys, create=True)
    plain.write_bytes(b"x" * 40)
    plain.chmod(0o600)
    with pytest.raises(KeyStoreError, match="32 bytes"):
        desk_linkage_key(keys)


def test_keys_protect_seals_the_secret_too(tmp_path: Path) -> None:
    keys = FileKeyStore(tmp_path / "k", create=True)
    secret = desk_linkage_key(keys, create=True)
    assert json.loads((tmp_path / "k" / "desk-linkage.secret").read_text())["protection"] == "none"
    keys.protect(SECRET, scrypt_n=2**10)
    record = json.loads((tmp_path / "k" / "desk-linkage.secret").read_text())
    assert record["protection"] == "aes-256-gcm"
    assert desk_linkage_key(FileKeyStore(tmp_path / "k", SECRET)) == secret


def test_a_child_whose_names_are_not_strings_is_not_keyed() -> None:
    base = {"role": "child", "given_name": "Mary Ann", "family_name": "Hollis",
            "dob": "2019-03-02"}  # fmt: skip
    assert child_key(b"k" * 32, base) is not None
    assert child_key(b"k" * 32, {**base, "given_name": 123}) is None
    assert child_key(b"k" * 32, {**base, "given_name": " MARY ANN "}) == child_key(b"k" * 32, base)
