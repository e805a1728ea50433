"""The desk's linkage secret: 32 random bytes in the party's keystore, sealed under its
passphrase, made once, the same for every desk process; an older desk's plain file moves in."""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from pydantic import SecretStr

from broker.desk import LINKAGE_FILE, child_key, desk_linkage_key
from broker.errors import KeyStoreError
from broker.keys import FileKeyStore

SECRET = SecretStr("a desk's passphrase")


def _sealed(path: Path) -> FileKeyStore:
    return FileKeyStore(path, SECRET, create=True, scrypt_n=2**10)


def test_the_secret_is_made_once_sealed_in_the_keystore_and_then_read(tmp_path: Path) -> None:
    keys = _sealed(tmp_path / "k")
    first = desk_linkage_key(keys)
    assert len(first) == 32
    record = json.loads((tmp_path / "k" / "desk-linkage.secret").read_text())
    assert record["protection"] == "aes-256-gcm"
    assert first.hex() not in json.dumps(record)
    assert desk_linkage_key(keys) == first
    assert desk_linkage_key(FileKeyStore(tmp_path / "k", SECRET)) == first
    assert not (tmp_path / "k" / LINKAGE_FILE).exists()


def _in_a_process(path: Path) -> bytes:
    return desk_linkage_key(FileKeyStore(path, SECRET))


def test_processes_starting_together_agree_on_one_secret(tmp_path: Path) -> None:
    _sealed(tmp_path / "k")
    with ProcessPoolExecutor(max_workers=4) as pool:
        keys = list(pool.map(_in_a_process, [tmp_path / "k"] * 8))
    assert len(set(keys)) == 1
    assert not list((tmp_path / "k").glob(".*.tmp"))


def test_an_older_desks_plain_file_moves_into_the_keystore(tmp_path: Path) -> None:
    """Every child stays keyed as before: the secret is the same bytes, now sealed."""
    keys = _sealed(tmp_path / "k")
    plain = tmp_path / "k" / LINKAGE_FILE
    old = os.urandom(32)
    plain.write_bytes(old)
    plain.chmod(0o600)
    assert desk_linkage_key(keys) == old
    assert not plain.exists()
    assert desk_linkage_key(keys) == old


def test_a_plain_file_left_after_a_move_must_agree_with_the_keystore(tmp_path: Path) -> None:
    """A crash between sealing and removing the file leaves both: they agree, the file goes;
    a file holding another secret is refused rather than re-keying every child."""
    keys = _sealed(tmp_path / "k")
    plain = tmp_path / "k" / LINKAGE_FILE
    sealed = desk_linkage_key(keys)
    plain.write_bytes(sealed)
    plain.chmod(0o600)
    assert desk_linkage_key(keys) == sealed
    assert not plain.exists()
    plain.write_bytes(os.urandom(32))
    plain.chmod(0o600)
    with pytest.raises(KeyStoreError, match="does not hold the secret expected"):
        desk_linkage_key(keys)


def test_a_plain_file_readable_by_others_or_of_the_wrong_size_is_refused(tmp_path: Path) -> None:
    keys = _sealed(tmp_path / "k")
    plain = tmp_path / "k" / LINKAGE_FILE
    plain.write_bytes(os.urandom(32))
    os.chmod(plain, 0o644)  # noqa: PTH101  # the test needs exactly this mode
    with pytest.raises(KeyStoreError, match="0600"):
        desk_linkage_key(keys)
    plain.write_bytes(b"x" * 40)
    plain.chmod(0o600)
    with pytest.raises(KeyStoreError, match="32 bytes"):
        desk_linkage_key(keys)


def test_keys_protect_seals_the_secret_too(tmp_path: Path) -> None:
    keys = FileKeyStore(tmp_path / "k", create=True)
    secret = desk_linkage_key(keys)
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
