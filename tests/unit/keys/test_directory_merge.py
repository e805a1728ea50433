"""What sign_directory refuses to take from an (unsigned) entries file, and what it says it
changed: the governance signature vouches for every entry to every keystore."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker.config import KemSuite
from broker.envelope import KeyInfo, KeyPurpose, KeyStatus
from broker.errors import KeyStoreError
from broker.keys import (
    FileKeyStore,
    KeyChange,
    export_entries,
    import_directory,
    sign_directory,
    trusted_signers,
)
from broker.keys._directory import entry_json
from broker.keys._entries import sign_entries
from tests.unit.keys.conftest import PARTIES
from tests.unit.keys.conftest import keystore as _store


def _fresh(tmp_path: Path, party: str, purpose: KeyPurpose = KeyPurpose.SIGN) -> KeyInfo:
    """A key made anywhere but the party's own keystore (whoever wrote the file holds it)."""
    elsewhere = FileKeyStore(tmp_path / f"elsewhere-{party}", None, create=True)
    [key] = elsewhere.ensure_party(party, purposes=[purpose], kem=KemSuite.X25519)
    return key


def _entries(party: str, keys: list[KeyInfo]) -> bytes:
    doc = {"format": "accord-key-entries/v1", "party": party, "keys": [entry_json(k) for k in keys]}
    return json.dumps(doc).encode()


def _serial(root: Path) -> int:
    return int(json.loads(sign_directory(_store(root, "governance"), []))["serial"])


def test_an_entries_file_naming_a_governance_key_is_refused_and_nothing_is_signed(
    root: Path, tmp_path: Path
) -> None:
    """A governance key from a file would become a trusted directory signer in every keystore
    that imports the directory; governance keys join only from the governance keystore."""
    forged = _fresh(tmp_path, "governance")
    before = _serial(root)
    governance = _store(root, "governance")
    with pytest.raises(KeyStoreError) as caught:
        sign_directory(governance, [("gov.json", _entries("governance", [forged]))])
    assert str(caught.value) == (
        f"gov.json: lists governance key {forged.key_id}: governance keys join the directory "
        "from the governance keystore only, never from a file; nothing was signed"
    )
    assert governance.public_key(forged.key_id) is None
    assert _serial(root) == before + 1  # the refused merge used no serial
    wmp = _store(root, "wmp")
    import_directory(wmp, sign_directory(governance, []), where=root / "d.json")
    assert forged.key_id not in {k.key_id for k in trusted_signers(wmp)}


def test_a_new_key_beside_an_active_one_that_never_expires_is_refused_unless_allowed(
    root: Path, tmp_path: Path
) -> None:
    """A rotation's export gives the old key its expiry; an extra key slipped in beside a
    lasting one (say, to read a party's deliveries) has no such expiry to show."""
    wmp, governance = _store(root, "wmp"), _store(root, "governance")
    old = wmp.current_encryption_key("wmp")
    extra = _fresh(tmp_path, "wmp", KeyPurpose.ENCRYPT)
    document = json.loads(export_entries(wmp, "wmp"))
    document["keys"].append(entry_json(extra))
    # wmp's own export, signed by wmp: its proof of possession is not what is refused here.
    data = json.dumps(sign_entries(document, wmp.current_signing_key("wmp"))).encode()
    with pytest.raises(KeyStoreError) as caught:
        sign_directory(governance, [("wmp.json", data)])
    message = str(caught.value)
    assert message.startswith(
        f"wmp.json: gives wmp a new active encrypt key {extra.key_id} while its encrypt key "
        f"{old.key_id} stays active with no expiry"
    )
    assert "--allow-second-key" in message
    assert message.endswith("nothing was signed")
    assert governance.public_key(extra.key_id) is None

    signed = json.loads(sign_directory(governance, [("wmp.json", data)], allow_second_key=True))
    assert extra.key_id in {k["key_id"] for k in signed["keys"]}


def test_a_rotations_export_is_signed_and_each_change_is_described(root: Path) -> None:
    """accord keys rotate sets the old keys' expiry in the same export as the new keys: no
    option needed, and the officer is told each key added or changed."""
    wmp, governance = _store(root, "wmp"), _store(root, "governance")
    old = {k.purpose: k for k in wmp.keys("wmp")}
    created = wmp.rotate("wmp", kem=KemSuite.X25519)
    changes: list[KeyChange] = []
    sign_directory(governance, [("wmp.json", export_entries(wmp, "wmp"))], changes=changes)
    lines = sorted(change.describe() for change in changes)
    expires = {k.key_id: k.not_after for k in wmp.keys("wmp")}
    expected = [f"adds wmp {k.purpose.value} key {k.key_id}: active, no expiry" for k in created]
    for purpose, k in old.items():
        at = expires[k.key_id]
        assert at is not None
        expected.append(
            f"changes wmp {purpose.value} key {k.key_id}: "
            f"no expiry -> {at.strftime('%Y-%m-%dT%H:%M:%SZ')}"
        )
    assert lines == sorted(expected)
    again: list[KeyChange] = []
    sign_directory(governance, [("wmp.json", export_entries(wmp, "wmp"))], changes=again)
    assert again == []  # the same export again changes nothing


def test_a_status_the_master_copy_keeps_is_not_described_as_a_change(root: Path) -> None:
    governance, hub = _store(root, "governance"), _store(root, "cog-tipton")
    key = hub.current_signing_key("cog-tipton").info
    governance.revoke(key.key_id)
    changes: list[KeyChange] = []
    entries = [("hub.json", export_entries(hub, "cog-tipton"))]
    # Signed by the key revoked here, which proves nothing: taken on the officer's word.
    sign_directory(governance, entries, changes=changes, unsigned=["cog-tipton"])
    # Its export says active; the revocation here stands, and is what this directory says
    # anew beside the last one signed (never "no change").
    [change] = changes
    assert change.describe() == f"revokes cog-tipton sign key {key.key_id}: was active, no expiry"
    assert governance.public_key(key.key_id).status is KeyStatus.REVOKED  # type: ignore[union-attr]
    again: list[KeyChange] = []
    sign_directory(governance, entries, changes=again, unsigned=["cog-tipton"])
    assert again == []  # said once: the next directory says it again, nothing new


def test_an_entry_of_a_party_the_bundle_does_not_know_is_refused_with_a_hint(
    root: Path, tmp_path: Path
) -> None:
    governance = _store(root, "governance")
    typo = _fresh(tmp_path, "cog-tiptn")
    with pytest.raises(KeyStoreError) as caught:
        sign_directory(governance, [("hub.json", _entries("cog-tiptn", [typo]))], parties=PARTIES)
    assert str(caught.value) == (
        f"hub.json: lists key {typo.key_id} of cog-tiptn, no party of the policy bundle's "
        "parties.yaml (did you mean cog-tipton?); nothing was signed"
    )
    # Accord's own principals are in no bundle, and are known all the same.
    worker = _store(root, "worker")
    sign_directory(governance, [("worker.json", export_entries(worker, "worker"))], parties=PARTIES)
    # With no bundle to read, no party is checked.
    sign_directory(governance, [("hub.json", _entries("cog-tiptn", [typo]))])
    assert governance.public_key(typo.key_id) is not None


def test_a_replayed_older_export_neither_lifts_an_expiry_nor_re_dates_a_key(root: Path) -> None:
    """An export is signed by the party, so a copy kept from before a rotation is still taken:
    it listed the old keys with no expiry, and taking that would keep them live for good
    (review of ks45). An expiry only ever comes sooner; created_at stays the master copy's."""
    wmp, governance = _store(root, "wmp"), _store(root, "governance")
    before_rotation = export_entries(wmp, "wmp")
    wmp.rotate("wmp", kem=KemSuite.X25519)
    sign_directory(governance, [("wmp.json", export_entries(wmp, "wmp"))])
    listed = {k.key_id: k for k in governance.keys("wmp")}
    ends = {i: k.not_after for i, k in listed.items() if k.not_after is not None}
    assert ends  # the rotation gave the old keys their expiry
    changes: list[KeyChange] = []
    sign_directory(governance, [("old.json", before_rotation)], changes=changes)
    assert changes == []
    after = {k.key_id: k for k in governance.keys("wmp")}
    assert {i: after[i].not_after for i in ends} == ends
    assert {i: k.created_at for i, k in after.items()} == {
        i: k.created_at for i, k in listed.items()
    }


@pytest.mark.parametrize("principal", ["indexer", "admin"])
def test_only_the_chain_writers_are_known_without_the_bundle(
    root: Path, tmp_path: Path, principal: str
) -> None:
    """worker and console are always known; another principal (indexer, admin) is no
    party of the bundle and is refused as one."""
    key = _fresh(tmp_path, principal)
    with pytest.raises(KeyStoreError, match=f"of {principal}, no party of the policy bundle"):
        sign_directory(
            _store(root, "governance"),
            [("x.json", _entries(principal, [key]))],
            parties=PARTIES,
        )


def test_a_forged_file_is_refused_for_its_signature_before_any_merge_advice(
    root: Path, tmp_path: Path
) -> None:
    """An unsigned file adding a second lasting key to a listed party is refused as unsigned,
    never met first with '--allow-second-key', which would steer the officer to take it."""
    governance = _store(root, "governance")
    extra = _fresh(tmp_path, "wmp")
    entries = _entries("wmp", [*governance.keys("wmp"), extra])
    with pytest.raises(KeyStoreError) as caught:
        sign_directory(governance, [("wmp.json", entries)])
    assert "already has keys in the directory" in str(caught.value)
    assert "--allow-second-key" not in str(caught.value)


def test_an_active_keys_status_date_stays_the_master_copys_unless_its_status_changes(
    root: Path,
) -> None:
    """A file's status_changed_at for a key whose status it leaves as it was is not taken:
    the change list would not show it."""
    governance, wmp = _store(root, "governance"), _store(root, "wmp")
    before = {k.key_id: k.status_changed_at for k in governance.keys("wmp")}
    document = json.loads(export_entries(wmp, "wmp"))
    body = {k: v for k, v in document.items() if k not in ("signed_by", "signature")}
    for entry in body["keys"]:
        entry["status_changed_at"] = "2020-01-01T00:00:00+00:00"
    signed = sign_entries(body, wmp.current_signing_key("wmp"))
    changes: list[KeyChange] = []
    sign_directory(governance, [("wmp.json", json.dumps(signed).encode())], changes=changes)
    assert changes == []
    assert {k.key_id: k.status_changed_at for k in governance.keys("wmp")} == before
