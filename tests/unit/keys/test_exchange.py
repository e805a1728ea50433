"""One keystore per organisation, public keys exchanged through a signed directory."""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from broker.config import EnvelopeSettings, KemSuite
from broker.envelope import KeyPurpose, KeyStatus, Sealer
from broker.errors import KeyRejected, KeyStoreError
from broker.keys import (
    FileKeyStore,
    export_entries,
    import_directory,
    init_keystores,
    sign_directory,
)
from broker.keys._directory import entry_json, signed_bytes
from broker.keys._entries import sign_entries

PARTIES = ["wmp", "cog-tipton", "cog-oldbury"]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    init_keystores(tmp_path / "keys", PARTIES, passphrase=None, kem=KemSuite.X25519)
    return tmp_path / "keys"


def _store(root: Path, principal: str) -> FileKeyStore:
    return FileKeyStore(root / principal)


def test_each_keystore_holds_only_its_own_private_keys_and_everyones_public_ones(
    root: Path,
) -> None:
    everyone = sorted([*PARTIES, "worker", "console", "governance"])
    for principal in everyone:
        store = _store(root, principal)
        assert store.private_parties() == [principal]
        assert store.parties() == everyone
    # The worker can seal to a hub (public key) but not open what is sealed to it.
    worker = _store(root, "worker")
    hub_key = worker.current_encryption_key("cog-tipton")
    assert worker.decryption_key(hub_key.key_id) is None
    assert _store(root, "cog-tipton").decryption_key(hub_key.key_id) is not None


def test_only_the_worker_and_console_hold_the_linkage_key(root: Path) -> None:
    assert _store(root, "worker").linkage_key() == _store(root, "console").linkage_key()
    for principal in (*PARTIES, "governance"):
        with pytest.raises(KeyStoreError, match="no linkage key"):
            _store(root, principal).linkage_key()


def _signed(root: Path) -> bytes:
    return (root / "directory.json").read_bytes()


def test_a_tampered_directory_is_refused_whole(root: Path, tmp_path: Path) -> None:
    doc = json.loads(_signed(root))
    [other] = [k for k in doc["keys"] if k["party"] == "wmp" and k["purpose"] == "encrypt"]
    for key in doc["keys"]:
        if key["party"] == "cog-tipton" and key["purpose"] == "encrypt":
            # An attacker swaps in a key it holds: the fingerprint no longer matches...
            key["public"] = other["public"]
    hub = _store(root, "cog-oldbury")
    before = hub.keys(party=None)
    with pytest.raises(KeyStoreError, match="does not match its id"):
        import_directory(hub, json.dumps(doc).encode(), where=tmp_path / "d.json")
    doc = json.loads(_signed(root))
    doc["keys"] = [k for k in doc["keys"] if k["party"] != "wmp"]  # ... or drops a party
    with pytest.raises(KeyStoreError, match="signature does not verify"):
        import_directory(hub, json.dumps(doc).encode(), where=tmp_path / "d.json")
    assert hub.keys(party=None) == before  # nothing of either was taken


def _seal_to_hub(worker: FileKeyStore, event_id: str) -> None:
    sealer = Sealer("worker", worker, EnvelopeSettings(kem=KemSuite.X25519))
    sealer.seal(b"{}", event_id=event_id, recipient="cog-tipton", schema="shared-record.v1",
                topic="accord.deliver.cog-tipton")  # fmt: skip


def test_a_revocation_in_a_new_directory_stops_sealing_to_the_key(root: Path) -> None:
    governance, worker = _store(root, "governance"), _store(root, "worker")
    hub_key = worker.current_encryption_key("cog-tipton")
    _seal_to_hub(worker, "e-1")
    governance.revoke(hub_key.key_id)
    document = sign_directory(governance, [])
    import_directory(worker, document, where=root / "directory.json")
    info = worker.public_key(hub_key.key_id)
    assert info is not None
    assert info.status is KeyStatus.REVOKED
    with pytest.raises(KeyRejected):
        _seal_to_hub(worker, "e-2")
    # The hub itself learns it, and cannot undo it by exporting its entries again.
    hub = _store(root, "cog-tipton")
    import_directory(hub, document, where=root / "directory.json")
    again = sign_directory(governance, [("hub", export_entries(hub, "cog-tipton"))])
    import_directory(worker, again, where=root / "directory.json")
    assert worker.public_key(hub_key.key_id).status is KeyStatus.REVOKED  # type: ignore[union-attr]


def test_an_older_directory_cannot_undo_a_newer_one(root: Path) -> None:
    governance, worker = _store(root, "governance"), _store(root, "worker")
    old = _signed(root)
    newer = sign_directory(governance, [])
    import_directory(worker, newer, where=root / "new.json")
    with pytest.raises(KeyStoreError, match="older than"):
        import_directory(worker, old, where=root / "old.json")


def test_the_first_import_needs_a_governance_key_given_on_purpose(
    root: Path, tmp_path: Path
) -> None:
    newcomer = FileKeyStore(tmp_path / "school", create=True)
    newcomer.ensure_party("school-1", kem=KemSuite.X25519)
    with pytest.raises(KeyStoreError, match="--trust"):
        import_directory(newcomer, _signed(root), where=root / "directory.json")
    wrong = _store(root, "worker").current_signing_key("worker").info.key_id
    with pytest.raises(KeyStoreError, match=f"--trust {wrong} names no governance signing key"):
        import_directory(newcomer, _signed(root), where=root / "directory.json", trust=wrong)
    anchor = _store(root, "governance").current_signing_key("governance").info.key_id
    import_directory(newcomer, _signed(root), where=root / "directory.json", trust=anchor)
    assert "worker" in newcomer.parties()
    assert newcomer.private_parties() == ["school-1"]  # its own key survives the import
    with pytest.raises(KeyStoreError, match="names no governance signing key"):
        # A pin that names nothing is refused even where another key is trusted already.
        import_directory(newcomer, _signed(root), where=root / "directory.json", trust=wrong)


def test_a_passphrase_protects_the_linkage_key_too(tmp_path: Path) -> None:
    from pydantic import SecretStr

    secret = SecretStr("synthetic-passphrase")
    init_keystores(tmp_path, ["wmp"], passphrase=secret, kem=KemSuite.X25519)
    raw = (tmp_path / "worker" / "linkage.key").read_text()
    key = FileKeyStore(tmp_path / "worker", secret).linkage_key()
    assert key.hex() not in raw
    assert json.loads(raw)["protection"] == "aes-256-gcm"
    assert [k.purpose for k in FileKeyStore(tmp_path / "console", secret).keys("console")] == [
        KeyPurpose.SIGN
    ]


def test_after_a_rotation_every_keystore_seals_to_the_new_key_whatever_the_key_ids(
    root: Path,
) -> None:
    """The newest key seals: by creation, not by where a directory (sorted by the random key
    ids) lists it. Otherwise half of rotations leave senders sealing to the old key, and
    unable to seal at all once it expires."""
    governance, hub = _store(root, "governance"), _store(root, "cog-tipton")
    for _ in range(40):  # until the new key's id sorts before the old one's (1 in 2 a try)
        old = hub.current_encryption_key("cog-tipton")
        [new] = hub.rotate("cog-tipton", purposes=[KeyPurpose.ENCRYPT], kem=KemSuite.X25519)
        document = sign_directory(governance, [("hub", export_entries(hub, "cog-tipton"))])
        for principal in ("worker", "cog-tipton"):
            import_directory(_store(root, principal), document, where=root / "directory.json")
        if new.key_id < old.key_id:
            break
    assert new.key_id < old.key_id
    worker = _store(root, "worker")
    assert worker.current_encryption_key("cog-tipton").key_id == new.key_id
    assert _store(root, "cog-tipton").current_encryption_key("cog-tipton").key_id == new.key_id
    past_the_grace = time.time() + 8 * 86400
    sealer = Sealer("worker", worker, EnvelopeSettings(kem="x25519"), clock=lambda: past_the_grace)
    assert sealer.can_seal_to("cog-tipton")


def test_a_partys_entries_cannot_claim_revoke_or_extend_another_partys_keys(root: Path) -> None:
    """Each entries document speaks for its own party's keys only: one that relabels another
    party's key as its own is refused whole, and nothing is signed."""
    worker = _store(root, "worker")
    signing = worker.current_signing_key("worker").info
    document = json.loads(export_entries(_store(root, "wmp"), "wmp"))
    document["keys"].append(entry_json(signing) | {"party": "wmp", "status": "revoked"})
    wmp = _store(root, "wmp")
    document = sign_entries(document, wmp.current_signing_key("wmp"))  # wmp's own, so taken
    governance = _store(root, "governance")
    before = json.loads(sign_directory(governance, []))["serial"]
    with pytest.raises(KeyStoreError, match="it is worker's"):
        sign_directory(governance, [("wmp.json", json.dumps(document).encode())])
    after = json.loads(sign_directory(governance, []))
    assert after["serial"] == before + 1  # the refused merge used no serial
    [listed] = [k for k in after["keys"] if k["key_id"] == signing.key_id]
    assert (listed["party"], listed["status"]) == ("worker", "active")


def test_a_governance_rotation_is_introduced_by_the_old_key_which_then_signs_nothing(
    root: Path,
) -> None:
    """During the grace the old key signs, and the directory it signs introduces the new one;
    after it (or once the old key is retired) only the new key signs, and a directory signed
    with the old one is refused: whoever holds it since cannot hand out keys of their own."""
    start = time.time()
    days = [start]  # the governance keystore's clock
    governance = FileKeyStore(root / "governance", clock=lambda: days[0])
    old = governance.current_signing_key("governance")
    days[0] = start + 86400
    [new] = governance.rotate("governance", purposes=[KeyPurpose.SIGN])  # 7 days' grace
    hub = _store(root, "cog-tipton")

    def at(day: int) -> datetime:
        return datetime.fromtimestamp(start + day * 86400, UTC)

    days[0] = start + 2 * 86400
    during = import_directory(hub, sign_directory(governance, [], now=at(2)),
                              where=root / "d.json", now=at(2))  # fmt: skip
    assert during.signer == old.info.key_id
    days[0] = start + 9 * 86400
    after = import_directory(hub, sign_directory(governance, [], now=at(9)),
                             where=root / "d.json", now=at(9))  # fmt: skip
    assert after.signer == new.key_id
    forged = signed_bytes(hub.keys(), serial=after.serial + 1, issued_at=at(9),
                          signer=old.info.key_id, sign=old.key.sign)  # fmt: skip
    with pytest.raises(KeyStoreError, match="does not verify"):
        import_directory(hub, forged, where=root / "forged.json", now=at(9))
    # Retired before its grace ends: the same.
    governance.retire(old.info.key_id)
    retired = import_directory(hub, sign_directory(governance, [], now=at(3)),
                               where=root / "d.json", now=at(3))  # fmt: skip
    assert retired.signer == new.key_id
    with pytest.raises(KeyStoreError, match="does not verify"):
        import_directory(hub, forged, where=root / "forged.json", now=at(3))


def test_a_directory_signed_by_a_governance_key_never_introduced_here_says_so_not_tampering(
    root: Path,
) -> None:
    """A party that missed a governance rotation's grace: the refusal names the new key, the
    one it trusts and the way back (--trust, checked out of band), which then imports."""
    start = time.time()
    days = [start]
    governance = FileKeyStore(root / "governance", clock=lambda: days[0])
    old = governance.current_signing_key("governance").info.key_id
    [new] = governance.rotate("governance", purposes=[KeyPurpose.SIGN])  # 7 days' grace
    days[0] = start + 9 * 86400
    at = datetime.fromtimestamp(days[0], UTC)
    document = sign_directory(governance, [], now=at)
    hub = _store(root, "cog-tipton")  # imported nothing during the grace
    with pytest.raises(KeyStoreError) as refused:
        import_directory(hub, document, where=root / "d.json", now=at)
    message = str(refused.value)
    assert f"signed by governance key {new.key_id}, which this keystore does not trust" in message
    assert f"(it trusts {old})" in message
    assert f"import with --trust {new.key_id}" in message
    assert "does not verify" not in message
    taken = import_directory(hub, document, where=root / "d.json", trust=new.key_id, now=at)
    assert taken.signer == new.key_id


def test_signing_in_a_keystore_without_a_governance_key_names_it_and_the_right_one(
    root: Path,
) -> None:
    """A party's keystore given by mistake: not the advice for a lapsed governance key (give
    it a new one, re-pin it everywhere), which would alarm every organisation for nothing."""
    worker = _store(root, "worker")
    before = (root / "worker" / "directory.json").read_bytes()
    with pytest.raises(KeyStoreError) as refused:
        sign_directory(worker, [])
    assert str(refused.value) == (
        f"this keystore ({worker.path}) holds no governance key: use the IG officer's (--dir)"
    )
    assert (root / "worker" / "directory.json").read_bytes() == before  # nothing merged
    governance = _store(root, "governance")
    governance.retire(governance.current_signing_key("governance").info.key_id)
    with pytest.raises(KeyStoreError, match="re-pin"):  # a lapsed key: that advice stands
        sign_directory(governance, [])


def test_a_failed_init_removes_the_stores_it_made_and_keeps_those_there_before(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo adds a party to its keys folder: were that to fail half-way, the new
    party's store (keys, no directory) would be taken for a whole one by the next run."""
    import broker.keys._exchange as exchange

    def broken(*_: object, **__: object) -> bytes:
        raise KeyStoreError("the disk filled up")

    kept = {p.name for p in root.iterdir()}
    monkeypatch.setattr(exchange, "sign_directory", broken)
    with pytest.raises(KeyStoreError, match="the disk filled up"):
        init_keystores(root, [*PARTIES, "cog-new"], passphrase=None, kem=KemSuite.X25519)
    assert {p.name for p in root.iterdir()} == kept  # directory.json, made before, stays
    assert _store(root, "wmp").private_parties() == ["wmp"]
    (root / "directory.json").unlink()
    for p in root.iterdir():
        shutil.rmtree(p)
    with pytest.raises(KeyStoreError, match="the disk filled up"):
        init_keystores(root, PARTIES, passphrase=None, kem=KemSuite.X25519)
    assert list(root.iterdir()) == []


def test_a_revocation_made_while_sign_directory_merges_is_not_undone(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sign_directory holds the keystore lock from its read of the master copy to its write:
    an `accord keys revoke` in between waits, and its revocation stands."""
    import threading

    import broker.keys._exchange as exchange

    governance = _store(root, "governance")
    [victim] = [k for k in governance.keys("wmp") if k.purpose is KeyPurpose.SIGN]
    merge = exchange.merge_entries
    revoker: list[threading.Thread] = []

    def slow_merge(*args: Any, **kwargs: Any) -> Any:
        other = FileKeyStore(root / "governance")  # as another process would
        revoker.append(threading.Thread(target=other.revoke, args=(victim.key_id,)))
        revoker[0].start()
        revoker[0].join(0.5)  # without the lock held, the revocation lands here
        return merge(*args, **kwargs)

    monkeypatch.setattr(exchange, "merge_entries", slow_merge)
    sign_directory(governance, [])
    revoker[0].join()
    again = FileKeyStore(root / "governance")
    assert again.public_key(victim.key_id).status is KeyStatus.REVOKED  # type: ignore[union-attr]


def test_a_governance_key_revoked_as_a_directory_is_being_signed_does_not_sign_it(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signer was chosen before the lock: a revoke landing between gave a directory
    signed by a key the same document lists as revoked, which keystores imported (r45f)."""
    import contextlib

    import broker.keys._exchange as exchange

    governance = _store(root, "governance")
    [key] = [k for k in governance.keys("governance") if k.purpose is KeyPurpose.SIGN]
    real = exchange.locked

    @contextlib.contextmanager
    def revoked_just_before(path: Path) -> Any:
        FileKeyStore(root / "governance").revoke(key.key_id)  # another process, just now
        with real(path):
            yield

    monkeypatch.setattr(exchange, "locked", revoked_just_before)
    with pytest.raises(KeyStoreError, match="no live signing key"):
        sign_directory(governance, [])
