"""A publisher or subscriber refuses, when made, a keystore that could not do its job, naming
the fix and no key: not at the first record with an envelope error (no Kafka needed)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from broker.config import EnvelopeSettings, KafkaSettings, KemSuite
from broker.envelope import KeyPurpose
from broker.errors import KeyStoreError
from broker.keys import (
    FileKeyStore,
    export_entries,
    import_directory,
    init_keystores,
    sign_directory,
)
from broker.sdk import Publisher, Subscriber

X25519 = EnvelopeSettings(kem=KemSuite.X25519)  # the keystores' KEM: quick to make
HYBRID = EnvelopeSettings()  # the default
KAFKA = KafkaSettings(bootstrap="127.0.0.1:1")  # never contacted: nothing is started
KEY_ID = re.compile(r"[0-9a-f]{16,}")


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One keystore per principal, each with the signed directory imported (keys init)."""
    root = tmp_path_factory.mktemp("keys")
    init_keystores(root, ["wmp", "cog-tipton"], passphrase=None, kem=KemSuite.X25519)
    return root


def _own_keys_only(tmp_path: Path, party: str) -> FileKeyStore:
    """What 'accord keys init --party PARTY' leaves before 'accord keys import'."""
    store = FileKeyStore(tmp_path / party, create=True)
    store.ensure_party(party, kem=KemSuite.X25519)
    return store


def _publisher(keys: FileKeyStore) -> Publisher:
    return Publisher("wmp", keys, KAFKA, envelope=X25519)


def _subscriber(keys: FileKeyStore) -> Subscriber:
    return Subscriber("cog-tipton", keys, KAFKA, "cog-tipton.g", envelope=X25519)


def _says_import_and_no_key(err: pytest.ExceptionInfo[KeyStoreError]) -> None:
    assert "accord keys import" in str(err.value)
    assert not KEY_ID.search(str(err.value))


def test_a_publisher_without_the_key_directory_is_refused_naming_the_import(
    tmp_path: Path,
) -> None:
    with pytest.raises(KeyStoreError, match=r"no live encryption key for the broker") as err:
        _publisher(_own_keys_only(tmp_path, "wmp"))
    _says_import_and_no_key(err)


def test_a_subscriber_without_the_key_directory_is_refused_naming_the_import(
    tmp_path: Path,
) -> None:
    with pytest.raises(KeyStoreError, match=r"no live signing key of the broker") as err:
        _subscriber(_own_keys_only(tmp_path, "cog-tipton"))
    _says_import_and_no_key(err)


def test_with_the_directory_imported_both_are_made(imported: Path) -> None:
    assert _publisher(FileKeyStore(imported / "wmp")).party == "wmp"
    assert _subscriber(FileKeyStore(imported / "cog-tipton")).party == "cog-tipton"


def test_a_stale_directory_whose_broker_key_was_revoked_is_refused(
    imported: Path, tmp_path: Path
) -> None:
    """The reviewer's stale directory: the broker's encryption key is no longer live in it."""
    root = tmp_path / "keys"
    shutil.copytree(imported, root)  # the module's stores stay as they were imported
    governance, wmp = FileKeyStore(root / "governance"), FileKeyStore(root / "wmp")
    for k in governance.keys("worker"):
        if k.purpose is KeyPurpose.ENCRYPT:
            governance.revoke(k.key_id)
    import_directory(wmp, sign_directory(governance, []), where=root / "directory.json")
    with pytest.raises(KeyStoreError, match=r"no live encryption key for the broker") as err:
        _publisher(wmp)
    _says_import_and_no_key(err)


def test_a_publisher_whose_own_signing_key_was_revoked_is_refused(tmp_path: Path) -> None:
    store = _own_keys_only(tmp_path, "wmp")
    store.ensure_party("worker", kem=KemSuite.X25519)  # as if imported
    for k in store.keys("wmp"):
        if k.purpose is KeyPurpose.SIGN:
            store.revoke(k.key_id)
    with pytest.raises(KeyStoreError, match=r"no live signing key for wmp") as err:
        _publisher(store)
    assert "accord keys rotate" in str(err.value)
    assert not KEY_ID.search(str(err.value))


def test_a_subscriber_whose_own_encryption_key_was_revoked_is_refused(tmp_path: Path) -> None:
    """Deliveries are sealed to it: nothing the subscriber reads would open."""
    store = _own_keys_only(tmp_path, "cog-tipton")
    store.ensure_party("worker", kem=KemSuite.X25519)  # as if imported
    for k in store.keys("cog-tipton"):
        if k.purpose is KeyPurpose.ENCRYPT:
            store.revoke(k.key_id)
    with pytest.raises(KeyStoreError, match=r"no live encryption key of cog-tipton's own"):
        _subscriber(store)


@pytest.mark.parametrize("client", ["publisher", "subscriber"])
def test_a_client_of_the_other_kem_than_the_brokers_key_is_told_so_not_to_import(
    imported: Path, client: str
) -> None:
    """An x25519 deployment's directory is imported; the client is left at the hybrid
    default: importing again would change nothing, the setting would."""
    make = {
        "publisher": lambda: Publisher(
            "wmp", FileKeyStore(imported / "wmp"), KAFKA, envelope=HYBRID
        ),
        # No envelope: the default, hybrid.
        "subscriber": lambda: Subscriber(
            "cog-tipton", FileKeyStore(imported / "cog-tipton"), KAFKA, "cog-tipton.g"
        ),
    }[client]
    with pytest.raises(KeyStoreError) as err:
        make()
    said = str(err.value)
    assert said.startswith(
        "the broker's (worker) live encryption key is x25519, and this client is configured "
        "for mlkem768-x25519 (ACCORD_ENVELOPE__KEM"
    )
    assert "accord keys import" not in said
    assert not KEY_ID.search(said)


def test_a_client_set_to_x25519_against_a_hybrid_broker_key_is_told_so(tmp_path: Path) -> None:
    store = _own_keys_only(tmp_path, "wmp")
    store.ensure_party("worker", kem=KemSuite.HYBRID)  # as if imported
    with pytest.raises(KeyStoreError, match=r"key is mlkem768-x25519, and this client is "
                                            r"configured for x25519 ") as err:  # fmt: skip
        _publisher(store)
    assert "accord keys import" not in str(err.value)


def _anchor(root: Path) -> str:
    return FileKeyStore(root / "governance").current_signing_key("governance").info.key_id


def _remade(imported: Path, tmp_path: Path, party: str) -> FileKeyStore:
    """``party``'s keystore lost, made again (keys init) and given the directory (keys import):
    the directory lists the lost keys, the store holds only new ones."""
    root = tmp_path / "keys"
    shutil.copytree(imported, root)
    shutil.rmtree(root / party)
    store = _own_keys_only(root, party)
    directory = (root / "directory.json").read_bytes()
    import_directory(store, directory, where=root / "directory.json", trust=_anchor(root))
    return store


@pytest.mark.parametrize("client", ["publisher", "subscriber"])
def test_a_keystore_made_again_beside_its_listed_keys_is_refused_saying_to_restore_it(
    imported: Path, tmp_path: Path, client: str
) -> None:
    """Else it signs with a key the broker does not know: every record is quarantined while
    the sender is told it was sent (a subscriber's acknowledgements too)."""
    party = "wmp" if client == "publisher" else "cog-tipton"
    store = _remade(imported, tmp_path, party)
    make = _publisher if client == "publisher" else _subscriber
    with pytest.raises(KeyStoreError) as err:
        make(store)
    said = str(err.value)
    assert said.startswith(
        f"this keystore holds none of the signing keys the key directory lists for {party}"
    )
    assert f"restore {party}'s keystore from its backup, not new keys" in said
    assert "\n" not in said
    assert not KEY_ID.search(said)


def test_a_keystore_whose_party_the_directory_does_not_list_yet_is_made(
    tmp_path: Path,
) -> None:
    """A first set-up: the party's keys are signed into a later directory."""
    root = tmp_path / "keys"
    init_keystores(root, ["cog-tipton"], passphrase=None, kem=KemSuite.X25519)
    wmp = _own_keys_only(root, "wmp")
    import_directory(wmp, (root / "directory.json").read_bytes(), where=root, trust=_anchor(root))
    assert _publisher(wmp).party == "wmp"


def test_a_rotated_keystore_is_made_before_and_after_the_directory_naming_the_new_key(
    imported: Path, tmp_path: Path
) -> None:
    """During a staged rotation the old, listed key signs; any listed key held will do."""
    root = tmp_path / "keys"
    shutil.copytree(imported, root)
    wmp, governance = FileKeyStore(root / "wmp"), FileKeyStore(root / "governance")
    wmp.rotate("wmp", kem=KemSuite.X25519)
    assert _publisher(wmp).party == "wmp"
    entries = [("wmp", export_entries(wmp, "wmp"))]
    import_directory(wmp, sign_directory(governance, entries), where=root)
    assert _publisher(wmp).party == "wmp"
