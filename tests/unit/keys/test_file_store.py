"""The local file keystore: layout and permissions, passphrase, rotation, status, reloads."""

from __future__ import annotations

import base64
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

import broker.keys._store as store_module
from broker.config import KemSuite
from broker.envelope import KeyAlg, KeyPurpose, KeyStatus, compute_key_id
from broker.errors import KeyNotFound, KeyStoreError, UsageError
from broker.keys import SPECIAL_PRINCIPALS, FileKeyStore

T0 = 1_790_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> FileKeyStore:
    ks = FileKeyStore(tmp_path / "keys", create=True, clock=clock)
    ks.ensure_party("wmp")
    return ks


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_missing_store_is_a_one_line_keystore_error(tmp_path: Path) -> None:
    """Another folder first, then the backup, making keys last: an agency whose keystore was
    made elsewhere was steered into making a second set of keys."""
    with pytest.raises(KeyStoreError, match="no keystore at") as info:
        FileKeyStore(tmp_path / "absent")
    said = str(info.value)
    assert "\n" not in said
    assert said.index("ACCORD_KEYSTORE__PATH") < said.index("restore it from its backup")
    assert said.index("restore it from its backup") < said.index("accord keys init")
    assert f"'accord keys init --party PARTY --dir {tmp_path / 'absent'}'" in str(info.value)


def test_a_keys_folder_of_one_keystore_per_principal_is_not_called_a_missing_keystore(
    tmp_path: Path,
) -> None:
    """Opened as one (the principal's own is lost), it names the stores it holds and how to
    get the missing one back: never bare 'keys init', which there would make every party's
    keys on a host serving other organisations."""
    FileKeyStore(tmp_path / "console", create=True)
    FileKeyStore(tmp_path / "indexer", create=True)
    with pytest.raises(KeyStoreError) as info:
        FileKeyStore(tmp_path)
    said = str(info.value)
    assert said.startswith(f"no keystore at {tmp_path}, a keys folder holding console, indexer's")
    assert f"'accord keys init --party PRINCIPAL --dir {tmp_path / 'PRINCIPAL'}'" in said
    assert "keys init'" not in said


def test_each_party_gets_an_ed25519_and_a_hybrid_key_with_fingerprint_ids(
    store: FileKeyStore,
) -> None:
    keys = store.keys("wmp")
    assert {(k.purpose, k.alg) for k in keys} == {
        (KeyPurpose.SIGN, KeyAlg.ED25519),
        (KeyPurpose.ENCRYPT, KeyAlg.MLKEM768_X25519),
    }
    for k in keys:
        assert k.key_id == compute_key_id(k.alg, k.public)
        assert len(k.key_id) == 32
    assert len(keys[1].public) == 1216


def test_ensure_party_is_idempotent(store: FileKeyStore) -> None:
    before = store.keys("wmp")
    assert store.ensure_party("wmp") == []
    assert store.keys("wmp") == before


def test_x25519_encryption_key_option(store: FileKeyStore) -> None:
    (enc,) = store.ensure_party("hub", purposes=[KeyPurpose.ENCRYPT], kem=KemSuite.X25519)
    assert enc.alg is KeyAlg.X25519
    assert store.decryption_key(enc.key_id) is not None


def test_special_principals_cover_worker_console_governance() -> None:
    assert set(SPECIAL_PRINCIPALS) == {"worker", "console", "governance"}
    assert SPECIAL_PRINCIPALS["console"] == (KeyPurpose.SIGN,)  # it is sent nothing
    assert KeyPurpose.ENCRYPT in SPECIAL_PRINCIPALS["governance"]


def test_private_keys_are_never_readable_by_others(store: FileKeyStore) -> None:
    assert _mode(store.path) == 0o700
    assert _mode(store.path / "private") == 0o700
    files = list((store.path / "private").iterdir())
    assert len(files) == 2
    for f in [*files, store.path / "directory.json", store.path / "keystore.json"]:
        assert _mode(f) == 0o600, f


def test_files_are_private_even_under_a_permissive_umask(tmp_path: Path) -> None:
    import os

    old = os.umask(0)
    try:
        ks = FileKeyStore(tmp_path / "k", create=True)
        ks.ensure_party("wmp")
    finally:
        os.umask(old)
    for f in (tmp_path / "k" / "private").iterdir():
        assert _mode(f) == 0o600


def test_a_world_readable_private_key_is_refused(tmp_path: Path, store: FileKeyStore) -> None:
    info = store.current_signing_key("wmp").info
    (store.path / "private" / f"{info.key_id}.key").chmod(0o644)
    reopened = FileKeyStore(store.path)
    with pytest.raises(KeyStoreError, match="chmod 600"):
        reopened.current_signing_key("wmp")


def test_a_group_readable_store_directory_is_refused(store: FileKeyStore) -> None:
    store.path.chmod(0o750)
    with pytest.raises(KeyStoreError, match="chmod 700"):
        FileKeyStore(store.path)


def test_passphrase_protects_private_keys_at_rest(tmp_path: Path) -> None:
    secret = SecretStr("correct horse battery staple")
    ks = FileKeyStore(tmp_path / "k", secret, create=True, scrypt_n=2**10)
    ks.ensure_party("wmp")
    ident = ks.current_signing_key("wmp")
    raw = ident.key.raw()
    for f in (tmp_path / "k" / "private").iterdir():
        record = json.loads(f.read_text())
        assert record["protection"] == "aes-256-gcm"
        assert raw not in base64.b64decode(record["key"])
    again = FileKeyStore(tmp_path / "k", secret)
    assert again.current_signing_key("wmp").key.raw() == raw
    enc = again.current_encryption_key("wmp")
    assert again.decryption_key(enc.key_id) is not None


def test_wrong_or_missing_passphrase_is_a_one_line_error(tmp_path: Path) -> None:
    FileKeyStore(tmp_path / "k", SecretStr("right"), create=True, scrypt_n=2**10)
    with pytest.raises(KeyStoreError, match="wrong passphrase") as info:
        FileKeyStore(tmp_path / "k", SecretStr("wrong"))
    assert "\n" not in str(info.value)
    assert "right" not in str(info.value)
    with pytest.raises(KeyStoreError, match="passphrase-protected"):
        FileKeyStore(tmp_path / "k")


def test_a_passphrase_for_an_unprotected_store_is_refused(store: FileKeyStore) -> None:
    with pytest.raises(KeyStoreError, match="no passphrase"):
        FileKeyStore(store.path, SecretStr("x"))


def test_swapped_wrapped_key_files_are_detected(tmp_path: Path) -> None:
    secret = SecretStr("pw")
    ks = FileKeyStore(tmp_path / "k", secret, create=True, scrypt_n=2**10)
    ks.ensure_party("a", purposes=[KeyPurpose.SIGN])
    ks.ensure_party("b", purposes=[KeyPurpose.SIGN])
    ida = ks.current_signing_key("a").info.key_id
    idb = ks.current_signing_key("b").info.key_id
    fa, fb = (tmp_path / "k" / "private" / f"{i}.key" for i in (ida, idb))
    rec_a, rec_b = json.loads(fa.read_text()), json.loads(fb.read_text())
    rec_a["nonce"], rec_a["key"] = rec_b["nonce"], rec_b["key"]
    fa.write_text(json.dumps(rec_a))
    with pytest.raises(KeyStoreError, match="cannot be unwrapped"):
        FileKeyStore(tmp_path / "k", secret).current_signing_key("a")


def test_a_directory_entry_whose_id_does_not_match_its_key_is_refused(
    store: FileKeyStore,
) -> None:
    path = store.path / "directory.json"
    doc = json.loads(path.read_text())
    doc["keys"][0]["public"] = base64.b64encode(bytes(32)).decode()
    path.write_text(json.dumps(doc))
    with pytest.raises(KeyStoreError, match="does not match its id"):
        FileKeyStore(store.path)


def test_rotate_makes_new_current_keys_and_gives_old_ones_a_grace(
    store: FileKeyStore, clock: Clock
) -> None:
    old_sign = store.current_signing_key("wmp").info
    old_enc = store.current_encryption_key("wmp")
    created = store.rotate("wmp", grace=timedelta(days=2))
    assert {k.purpose for k in created} == {KeyPurpose.SIGN, KeyPurpose.ENCRYPT}
    assert store.current_signing_key("wmp").info.key_id not in (old_sign.key_id,)
    assert store.current_encryption_key("wmp").key_id != old_enc.key_id
    old = store.public_key(old_sign.key_id)
    assert old is not None
    assert old.status is KeyStatus.ACTIVE
    assert old.not_after == datetime.fromtimestamp(T0, UTC) + timedelta(days=2)
    assert old.is_live(datetime.fromtimestamp(T0 + 1, UTC))
    assert not old.is_live(datetime.fromtimestamp(T0 + 2 * 86400, UTC))


def test_rotate_one_purpose_only(store: FileKeyStore) -> None:
    old_enc = store.current_encryption_key("wmp").key_id
    (new,) = store.rotate("wmp", purposes=[KeyPurpose.SIGN])
    assert new.purpose is KeyPurpose.SIGN
    assert store.current_encryption_key("wmp").key_id == old_enc


def test_rotate_unknown_party_is_key_not_found(store: FileKeyStore) -> None:
    with pytest.raises(KeyNotFound):
        store.rotate("nobody")


def test_retire_and_revoke_persist_and_revocation_is_final(store: FileKeyStore) -> None:
    sign = store.current_signing_key("wmp").info.key_id
    enc = store.current_encryption_key("wmp").key_id
    store.retire(enc)
    store.revoke(sign)
    reopened = FileKeyStore(store.path)
    assert reopened.public_key(enc).status is KeyStatus.RETIRED  # type: ignore[union-attr]
    assert reopened.public_key(sign).status is KeyStatus.REVOKED  # type: ignore[union-attr]
    with pytest.raises(KeyNotFound):
        reopened.current_signing_key("wmp")
    with pytest.raises(UsageError, match="stays revoked"):
        reopened.retire(sign)


def test_revoke_unknown_key_is_key_not_found(store: FileKeyStore) -> None:
    with pytest.raises(KeyNotFound, match="no key with id"):
        store.revoke("00" * 16)


def test_a_running_store_sees_another_process_revoke(
    store: FileKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "_REFRESH_SECONDS", 0.0)
    other = FileKeyStore(store.path)
    sign = store.current_signing_key("wmp").info.key_id
    other.revoke(sign)
    assert store.public_key(sign).status is KeyStatus.REVOKED  # type: ignore[union-attr]


def test_invalid_party_id_is_a_usage_error(store: FileKeyStore) -> None:
    with pytest.raises(UsageError):
        store.ensure_party("has space")


def test_parties_lists_every_party(store: FileKeyStore) -> None:
    store.ensure_party("console", purposes=SPECIAL_PRINCIPALS["console"])
    assert store.parties() == ["console", "wmp"]
    assert [k.purpose for k in store.keys("console")] == [KeyPurpose.SIGN]
