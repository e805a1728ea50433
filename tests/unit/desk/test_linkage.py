"""The desk's linkage secret: 32 random bytes in the party's keystore, one per party, sealed
under its passphrase, made once by enrolment, the same for every desk process of the party; a
server only reads it (or the one a keystore's desks shared before, as it is) and refuses to
start without it; only ``keys init`` (``move``) moves an older desk's plain file in."""

from __future__ import annotations

import hashlib
import json
import os
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from pydantic import SecretStr

from broker.desk import LINKAGE_FILE, child_key, desk_linkage_key, linkage_secret_name
from broker.errors import ConfigError, KeyStoreError
from broker.keys import FileKeyStore

SECRET = SecretStr("a desk's passphrase")
PARTY = "cog-tipton"
OWN = f"{linkage_secret_name(PARTY)}.secret"
SHARED = "desk-linkage.secret"  # the one a keystore's desks shared (2026-12-05 to -06)


def _sealed(path: Path) -> FileKeyStore:
    return FileKeyStore(path, SECRET, create=True, scrypt_n=2**10)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def _plain(keys: FileKeyStore, value: bytes) -> Path:
    plain = keys.path / LINKAGE_FILE
    plain.write_bytes(value)
    plain.chmod(0o600)
    return plain


def test_a_party_s_secret_is_named_by_a_hash_of_its_id() -> None:
    """Any party id (upper case, dots, colons) gives a name the keystore accepts."""
    for party in (PARTY, "Sandwell.Coord:East_1", "x" * 255):
        name = linkage_secret_name(party)
        assert name == f"desk-linkage-{hashlib.sha256(party.encode()).hexdigest()[:12]}"
        assert re.fullmatch(r"[a-z][a-z0-9-]{0,40}", name)
    assert linkage_secret_name("cog-tipton") != linkage_secret_name("cog-smethwick")
    assert linkage_secret_name("sandwell-coord") == "desk-linkage-dd8cce27c4cd"  # as docs say


def test_enrolment_makes_the_secret_once_sealed_in_the_keystore_and_servers_read_it(
    tmp_path: Path,
) -> None:
    keys = _sealed(tmp_path / "k")
    first = desk_linkage_key(keys, party=PARTY, create=True)
    assert len(first) == 32
    record = json.loads((tmp_path / "k" / OWN).read_text())
    assert record["protection"] == "aes-256-gcm"
    assert first.hex() not in json.dumps(record)
    assert desk_linkage_key(keys, party=PARTY, create=True) == first
    assert desk_linkage_key(keys, party=PARTY, move=True) == first
    assert desk_linkage_key(FileKeyStore(tmp_path / "k", SECRET), party=PARTY) == first
    assert not (tmp_path / "k" / LINKAGE_FILE).exists()
    assert not (tmp_path / "k" / SHARED).exists()


def test_two_parties_sharing_one_keystore_keep_different_secrets(tmp_path: Path) -> None:
    """One host's keystore holds both recipients' keys: their desks must not key a child
    alike."""
    keys = _sealed(tmp_path / "k")
    tipton = desk_linkage_key(keys, party=PARTY, create=True)
    smethwick = desk_linkage_key(keys, party="cog-smethwick", move=True, new_party=True)
    assert tipton != smethwick
    assert desk_linkage_key(keys, party=PARTY) == tipton
    assert desk_linkage_key(keys, party="cog-smethwick") == smethwick
    with pytest.raises(ConfigError, match="no desk linkage secret for cog-oldbury"):
        desk_linkage_key(keys, party="cog-oldbury")


def test_a_server_without_the_secret_refuses_in_one_line_and_makes_none(tmp_path: Path) -> None:
    """A secret a server made would key children unlike the other desk process, or be lost
    with a pod's memory: the command that makes it is named instead."""
    keys = _sealed(tmp_path / "k")
    before = sorted(p.name for p in (tmp_path / "k").iterdir())
    with pytest.raises(ConfigError) as refused:
        desk_linkage_key(keys, party=PARTY)
    message = str(refused.value)
    assert "\n" not in message
    assert str(tmp_path / "k") in message
    assert "'accord keys init --party cog-tipton'" in message
    assert sorted(p.name for p in (tmp_path / "k").iterdir()) == before


def test_a_server_reads_an_older_desks_plain_file_as_it_is_and_never_moves_it(
    tmp_path: Path,
) -> None:
    keys = _sealed(tmp_path / "k")
    old = os.urandom(32)
    _plain(keys, old)
    before = _files(tmp_path / "k")
    assert desk_linkage_key(keys, party=PARTY) == old
    assert _files(tmp_path / "k") == before


def test_add_user_leaves_an_older_desks_plain_file_and_the_keystore_as_they_are(
    tmp_path: Path,
) -> None:
    """add-user may run in a pod whose keystore is held in memory: moved in there, and the
    file removed, the secret would be gone at the next restart."""
    keys = _sealed(tmp_path / "k")
    old = os.urandom(32)
    _plain(keys, old)
    before = _files(tmp_path / "k")
    assert desk_linkage_key(keys, party=PARTY, create=True) == old
    assert _files(tmp_path / "k") == before
    assert desk_linkage_key(keys, party=PARTY) == old


def _in_a_process(path: Path) -> bytes:
    return desk_linkage_key(FileKeyStore(path, SECRET), party=PARTY, create=True)


def test_enrolments_running_together_agree_on_one_secret(tmp_path: Path) -> None:
    _sealed(tmp_path / "k")
    with ProcessPoolExecutor(max_workers=4) as pool:
        keys = list(pool.map(_in_a_process, [tmp_path / "k"] * 8))
    assert len(set(keys)) == 1
    assert not list((tmp_path / "k").glob(".*.tmp"))


def test_keys_init_moves_an_older_desks_plain_file_into_the_keystore(tmp_path: Path) -> None:
    """Every child stays keyed as before: the secret is the same bytes, now sealed, for the
    party and for any other whose keys the keystore held (it shared the file)."""
    keys = _sealed(tmp_path / "k")
    old = os.urandom(32)
    plain = _plain(keys, old)
    assert desk_linkage_key(keys, party=PARTY, move=True) == old
    assert not plain.exists()
    assert (tmp_path / "k" / OWN).is_file()
    assert desk_linkage_key(keys, party=PARTY) == old
    assert desk_linkage_key(keys, party="cog-smethwick") == old  # not enrolled again yet


def test_a_keystore_s_older_shared_secret_is_kept_by_its_parties_not_taken_by_new_ones(
    tmp_path: Path,
) -> None:
    """A keystore whose desks shared desk-linkage.secret (2026-12-05): each party reads it
    until enrolled, and then has it under its own name, so its children keep their keys; a
    party whose keys are new to the keystore gets a secret of its own."""
    keys = _sealed(tmp_path / "k")
    shared = keys.local_secret("desk-linkage")  # as a desk of 2026-12-05 made it
    before = _files(tmp_path / "k")
    for party in (PARTY, "cog-smethwick"):
        assert desk_linkage_key(keys, party=party) == shared
        assert desk_linkage_key(keys, party=party, create=True) == shared
    assert _files(tmp_path / "k") == before  # servers and add-user write nothing
    assert desk_linkage_key(keys, party=PARTY, move=True) == shared
    assert (tmp_path / "k" / OWN).is_file()
    new = desk_linkage_key(keys, party="cog-oldbury", move=True, new_party=True)
    assert new != shared
    assert desk_linkage_key(keys, party="cog-oldbury") == new
    assert desk_linkage_key(keys, party="cog-smethwick") == shared


def test_a_plain_file_left_after_a_move_must_agree_with_the_keystore(tmp_path: Path) -> None:
    """A crash between sealing and removing the file leaves both: they agree, and keys init
    removes the file (a server leaves it); a file holding another secret is refused by both
    rather than keying children two ways."""
    keys = _sealed(tmp_path / "k")
    sealed = desk_linkage_key(keys, party=PARTY, move=True)
    assert sealed == keys.local_secret("desk-linkage", initial=sealed)  # as a move left it
    plain = _plain(keys, sealed)
    (tmp_path / "k" / OWN).unlink()
    assert desk_linkage_key(keys, party=PARTY) == sealed
    assert plain.exists()
    assert desk_linkage_key(keys, party=PARTY, move=True) == sealed
    assert not plain.exists()
    (tmp_path / "k" / OWN).unlink()
    _plain(keys, os.urandom(32))
    with pytest.raises(KeyStoreError, match="keyed two ways"):
        desk_linkage_key(keys, party=PARTY, move=True)
    with pytest.raises(KeyStoreError, match="keyed two ways"):
        desk_linkage_key(keys, party=PARTY)


def test_a_plain_file_readable_by_others_or_of_the_wrong_size_is_refused(tmp_path: Path) -> None:
    keys = _sealed(tmp_path / "k")
    plain = _plain(keys, os.urandom(32))
    os.chmod(plain, 0o644)  # noqa: PTH101  # the test needs exactly this mode
    with pytest.raises(KeyStoreError, match="0600"):
        desk_linkage_key(keys, party=PARTY, move=True)
    plain.write_bytes(b"x" * 40)
    plain.chmod(0o600)
    with pytest.raises(KeyStoreError, match="32 bytes"):
        desk_linkage_key(keys, party=PARTY)


def test_keys_protect_seals_the_secret_too(tmp_path: Path) -> None:
    keys = FileKeyStore(tmp_path / "k", create=True)
    secret = desk_linkage_key(keys, party=PARTY, create=True)
    assert json.loads((tmp_path / "k" / OWN).read_text())["protection"] == "none"
    keys.protect(SECRET, scrypt_n=2**10)
    record = json.loads((tmp_path / "k" / OWN).read_text())
    assert record["protection"] == "aes-256-gcm"
    assert desk_linkage_key(FileKeyStore(tmp_path / "k", SECRET), party=PARTY) == secret


def test_a_child_whose_names_are_not_strings_is_not_keyed() -> None:
    base = {"role": "child", "given_name": "Mary Ann", "family_name": "Hollis",
            "dob": "2019-03-02"}  # fmt: skip
    assert child_key(b"k" * 32, base) is not None
    assert child_key(b"k" * 32, {**base, "given_name": 123}) is None
    assert child_key(b"k" * 32, {**base, "given_name": " MARY ANN "}) == child_key(b"k" * 32, base)
