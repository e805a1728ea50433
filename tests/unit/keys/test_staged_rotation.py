"""Staged rotation: a party signs with the newest of its own keys that the last signed
directory it took lists, so what it sends verifies for everyone holding that directory; a
key of its own that a directory lists is never loosened by taking a directory again."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import broker.keys._store as store_module
from broker.audit import KeystoreAuditSigner
from broker.config import EnvelopeSettings, KemSuite
from broker.envelope import KeyPurpose, KeyStatus, OpenedRecord, Opener, Sealer
from broker.keys import (
    FileKeyStore,
    export_entries,
    import_directory,
    init_keystores,
    sign_directory,
)
from broker.principals import Principal

PARTIES = ["wmp", "cog-tipton"]
X25519 = EnvelopeSettings(kem=KemSuite.X25519)


@pytest.fixture(autouse=True)
def _rereads_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # A running keystore re-reads its directory at most once a second; here, at once.
    monkeypatch.setattr(store_module, "_REFRESH_SECONDS", 0.0)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    init_keystores(tmp_path / "keys", PARTIES, passphrase=None, kem=KemSuite.X25519)
    return tmp_path / "keys"


def _store(root: Path, principal: str) -> FileKeyStore:
    return FileKeyStore(root / principal)


def _publish(root: Path, party: str) -> bytes:
    """The governance officer signs a directory with ``party``'s exported entries."""
    entries = export_entries(_store(root, party), party)
    return sign_directory(_store(root, "governance"), [(f"{party}.json", entries)])


def _take(root: Path, principal: str, document: bytes) -> None:
    import_directory(_store(root, principal), document, where=root / "directory.json")


def _send(sender: FileKeyStore, party: str, to: str, event_id: str) -> tuple[bytes, bytes]:
    record = Sealer(party, sender, X25519).seal(
        b"{}", event_id=event_id, recipient=to, schema="contact-event.v1", topic=f"t.{to}"
    )
    return record.value, record.dek_bundle


def _open(opener: Opener, sent: tuple[bytes, bytes]) -> OpenedRecord:
    return opener.open(*sent)


def test_an_agency_rotated_but_not_yet_in_a_directory_sends_what_the_worker_opens(
    root: Path,
) -> None:
    """The reviewer's case: after 'keys rotate wmp', the worker, holding the last signed
    directory, opens what wmp seals (the old key signs); once wmp has imported a directory
    naming its new key, that key signs, and the worker, with the same directory, opens it."""
    wmp = _store(root, "wmp")
    old = wmp.signing_key("wmp")
    new = next(k for k in wmp.rotate("wmp", kem=KemSuite.X25519) if k.purpose is KeyPurpose.SIGN)
    worker = Opener("worker", _store(root, "worker"))
    assert _open(worker, _send(wmp, "wmp", "worker", "e-1")).signer_key_id == old.key_id

    document = _publish(root, "wmp")
    _take(root, "worker", document)  # the recipients first: the old key still signs
    assert _open(worker, _send(wmp, "wmp", "worker", "e-2")).signer_key_id == old.key_id
    _take(root, "wmp", document)  # then the party itself: now the new key signs
    assert _store(root, "wmp").signing_key("wmp").key_id == new.key_id
    assert _open(worker, _send(_store(root, "wmp"), "wmp", "worker", "e-3")).signer_key_id == (
        new.key_id
    )


def test_a_worker_rotation_leaves_deliveries_openable_by_recipients_on_the_old_directory(
    root: Path,
) -> None:
    hub = Opener("cog-tipton", _store(root, "cog-tipton"))
    worker = _store(root, "worker")
    old = worker.signing_key("worker")
    worker.rotate("worker", kem=KemSuite.X25519)
    assert _open(hub, _send(worker, "worker", "cog-tipton", "d-1")).signer_key_id == old.key_id
    # The audit chain's checkpoints are signed the same way: verifiers hold the same keys.
    assert KeystoreAuditSigner(worker, Principal.WORKER).key_id == old.key_id
    document = _publish(root, "worker")
    _take(root, "cog-tipton", document)
    _take(root, "worker", document)
    new = _store(root, "worker").signing_key("worker")
    assert new.key_id != old.key_id
    delivered = _open(hub, _send(_store(root, "worker"), "worker", "cog-tipton", "d-2"))
    assert delivered.signer_key_id == new.key_id


def test_the_party_opens_with_its_new_key_at_once_and_the_old_one_through_the_grace(
    root: Path,
) -> None:
    """Opening is not staged: others seal to the new encryption key as soon as they hold the
    directory naming it, whenever the party itself imports it."""
    wmp = _store(root, "wmp")
    worker = _store(root, "worker")
    sent_before = _send(worker, "worker", "wmp", "x-1")  # to wmp's old encryption key
    wmp.rotate("wmp", kem=KemSuite.X25519)
    _take(root, "worker", _publish(root, "wmp"))  # wmp has not imported it
    sent_after = _send(_store(root, "worker"), "worker", "wmp", "x-2")  # to the new one
    opener = Opener("wmp", _store(root, "wmp"))
    assert _open(opener, sent_before).recipient_key_id != _open(opener, sent_after).recipient_key_id


def test_a_running_sender_switches_when_another_process_imports_the_directory(
    root: Path,
) -> None:
    running = _store(root, "wmp")
    [new] = running.rotate("wmp", purposes=[KeyPurpose.SIGN])
    assert running.signing_key("wmp").key_id != new.key_id
    _take(root, "wmp", _publish(root, "wmp"))  # 'accord keys import', another process
    assert running.signing_key("wmp").key_id == new.key_id
    assert running.current_signing_key("wmp").info.key_id == new.key_id


def test_once_the_listed_key_expires_the_newest_signs_and_before_any_directory_at_once(
    tmp_path: Path, root: Path
) -> None:
    """Nothing the directory lists can sign any more (its grace over): the newest active key
    signs, as it does in a keystore that has never taken a directory."""
    days = [time.time()]
    wmp = FileKeyStore(root / "wmp", clock=lambda: days[0])
    old = wmp.signing_key("wmp")
    [new] = wmp.rotate("wmp", purposes=[KeyPurpose.SIGN], grace=timedelta(days=1))
    assert wmp.signing_key("wmp").key_id == old.key_id
    days[0] += 2 * 86400
    assert wmp.signing_key("wmp").key_id == new.key_id

    alone = FileKeyStore(tmp_path / "alone", create=True)
    alone.ensure_party("wmp", kem=KemSuite.X25519)
    [fresh] = alone.rotate("wmp", purposes=[KeyPurpose.SIGN])
    assert alone.listed_by_directory() is None
    assert alone.signing_key("wmp").key_id == fresh.key_id


def test_taking_the_same_directory_again_keeps_a_local_rotations_expiry(root: Path) -> None:
    """The reviewer's case: 'keys rotate wmp' puts the old keys on a 7-day grace; importing
    the same directory again (a nightly job) must not make them never-expiring again, nor
    hand such a key to the governance officer in the next export."""
    wmp = _store(root, "wmp")
    olds = [k.key_id for k in wmp.keys("wmp")]
    wmp.rotate("wmp", kem=KemSuite.X25519)
    ends = {k.key_id: k.not_after for k in _store(root, "wmp").keys("wmp") if k.key_id in olds}
    assert all(end is not None for end in ends.values())
    _take(root, "wmp", (root / "directory.json").read_bytes())  # the same serial, again
    again = {k.key_id: k for k in _store(root, "wmp").keys("wmp")}
    assert {i: again[i].not_after for i in olds} == ends
    _publish(root, "wmp")
    exported = {k.key_id: k for k in _store(root, "governance").keys("wmp")}
    assert all(exported[i].not_after == ends[i] for i in olds)


def test_a_local_revocation_or_retirement_wins_over_the_directory_taken_again(
    root: Path,
) -> None:
    wmp = _store(root, "wmp")
    sign, enc = (wmp.signing_key("wmp"), wmp.current_encryption_key("wmp"))
    wmp.revoke(sign.key_id)
    wmp.retire(enc.key_id)
    _take(root, "wmp", (root / "directory.json").read_bytes())
    taken = _store(root, "wmp")
    assert taken.public_key(sign.key_id).status is KeyStatus.REVOKED  # type: ignore[union-attr]
    assert taken.public_key(enc.key_id).status is KeyStatus.RETIRED  # type: ignore[union-attr]


def test_a_rotation_exported_after_the_local_grace_is_signed_by_the_key_the_directory_lists(
    root: Path,
) -> None:
    """Once the old key's local grace has passed, the export is still signed by it (the key
    the master copy lists as live), not the new one it does not list, so sign-directory
    takes it without --unsigned."""
    _take(root, "wmp", sign_directory(_store(root, "governance"), []))
    wmp = _store(root, "wmp")
    [old] = [k for k in wmp.keys("wmp") if k.purpose is KeyPurpose.SIGN]
    wmp.rotate("wmp", kem=KemSuite.X25519)
    later = time.time() + timedelta(days=8).total_seconds()
    at = datetime.fromtimestamp(later, UTC)
    wmp_later = FileKeyStore(root / "wmp", clock=lambda: later)
    data = export_entries(wmp_later, "wmp", now=at)
    assert json.loads(data)["signed_by"] == old.key_id
    sign_directory(_store(root, "governance"), [("wmp.json", data)], now=at)
