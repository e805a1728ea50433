"""Audit checkpoints signed with the keystore's real Ed25519 audit key."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from broker.audit import (
    AuditKind,
    ChainWriter,
    KeystoreAuditSigner,
    KeystoreAuditVerifier,
    verify_chain,
)
from broker.envelope import KeyPurpose
from broker.errors import ChainBroken
from broker.keys import FileKeyStore
from broker.principals import Principal


def _now() -> datetime:
    return datetime(2026, 11, 22, 8, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> FileKeyStore:
    s = FileKeyStore(tmp_path / "keys", create=True)
    s.ensure_party("worker", purposes=[KeyPurpose.SIGN])
    s.ensure_party("wmp")
    return s


def _signed_chain(store: FileKeyStore) -> list:  # type: ignore[type-arg]
    w = ChainWriter("worker:w1", clock=_now)
    records = [w.append(AuditKind.RECEIVED, event_id=f"e{i}") for i in range(3)]
    records.append(w.checkpoint(KeystoreAuditSigner(store, Principal.WORKER)))
    return records


def test_a_checkpoint_signed_by_the_chain_writers_key_verifies(store: FileKeyStore) -> None:
    report = verify_chain(_signed_chain(store), KeystoreAuditVerifier(store))
    assert report.last_checkpoint_seq == 3


def test_a_checkpoint_by_a_revoked_writer_key_is_refused(store: FileKeyStore) -> None:
    records = _signed_chain(store)
    store.revoke(records[-1].data["key_id"])
    with pytest.raises(ChainBroken) as err:
        verify_chain(records, KeystoreAuditVerifier(store))
    assert err.value.seq == 3


def test_a_checkpoint_signed_by_another_party_is_refused(store: FileKeyStore) -> None:
    class AgencySigner:
        key_id = store.current_signing_key("wmp").info.key_id

        def sign(self, data: bytes) -> bytes:
            return store.current_signing_key("wmp").key.sign(data)

    w = ChainWriter("worker:w1", clock=_now)
    records = [w.append(AuditKind.RECEIVED), w.checkpoint(AgencySigner())]
    with pytest.raises(ChainBroken):
        verify_chain(records, KeystoreAuditVerifier(store))


def test_the_consoles_key_cannot_vouch_for_a_workers_chain(store: FileKeyStore) -> None:
    """Each writer signs its own chains only: a console key on a worker chain is refused."""
    store.ensure_party("console", purposes=[KeyPurpose.SIGN])
    w = ChainWriter("worker:w1", clock=_now)
    records = [
        w.append(AuditKind.RECEIVED),
        w.checkpoint(KeystoreAuditSigner(store, Principal.CONSOLE)),
    ]
    with pytest.raises(ChainBroken, match="checkpoint signature"):
        verify_chain(records, KeystoreAuditVerifier(store))
    console = ChainWriter("console:h1", clock=_now)
    ok = [console.append(AuditKind.RECEIVED)]
    ok.append(console.checkpoint(KeystoreAuditSigner(store, Principal.CONSOLE)))
    assert verify_chain(ok, KeystoreAuditVerifier(store)).records == 2


def test_a_checkpoint_names_the_key_that_signed_it_when_the_key_in_use_changes_between(
    store: FileKeyStore,
) -> None:
    """Another process importing a directory can change the key in use at any moment: a
    checkpoint must name the key that made its signature, not the one in use a moment
    later."""
    worker = Principal.WORKER
    old = store.current_signing_key(worker)
    store.rotate(worker)
    new = store.current_signing_key(worker)
    assert new.info.key_id != old.info.key_id

    class Switching:
        """The store's answer changes after the first signature (the import lands then)."""

        def __init__(self) -> None:
            self.asked = 0

        def current_signing_key(self, party: str) -> object:
            self.asked += 1
            return old if self.asked == 1 else store.current_signing_key(party)

        def __getattr__(self, name: str) -> object:
            return getattr(store, name)

    w = ChainWriter("worker:w1", clock=_now)
    records = [w.append(AuditKind.RECEIVED, event_id="e0")]
    records.append(w.checkpoint(KeystoreAuditSigner(Switching(), worker)))  # type: ignore[arg-type]
    assert records[-1].data["key_id"] == old.info.key_id
    verify_chain(records, verifier=KeystoreAuditVerifier(store))
