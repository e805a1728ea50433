"""The workers' ``keys_loaded`` records in the audit index and ``accord audit report``.

After a keystore theft the security officer found nothing saying which key directory each
worker took, which keys it added or revoked, or when. The worker records it now (on every
chain it holds); the indexer takes the kind, and the report lists each directory in use and
each change, once however many chains carry it, with party and key ids only.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest

from broker.audit import (
    AuditKind,
    AuditRecord,
    ChainWriter,
    KeystoreAuditSigner,
    KeystoreAuditVerifier,
    may_write,
)
from broker.cli._audit_report import report_json, report_text
from broker.config import KemSuite
from broker.governance import AuditStore, Window, governance_report, keys_loaded
from broker.keys import FileKeyStore
from broker.pipeline._keyset import key_set
from broker.principals import Principal
from tests.unit.audit.conftest import T0, index_records

CHAINS = ("accord.consent-0", "accord.ingress.wmp-0")


def _chains(keys: FileKeyStore) -> tuple[list[AuditRecord], list[str]]:
    """Two worker chains as a worker writes them: ``keys_loaded`` at each opening, then,
    after wmp's keys are revoked, the change on both; each record under a checkpoint."""
    keys.ensure_party("wmp", kem=KemSuite.X25519)
    before = key_set(keys, at=T0)
    stolen = sorted(k.key_id for k in keys.keys("wmp"))
    for key_id in stolen:
        keys.revoke(key_id)
    after = key_set(keys, at=T0 + timedelta(hours=2))
    assert before is not None
    assert after is not None
    signer = KeystoreAuditSigner(keys, Principal.WORKER)
    out: list[AuditRecord] = []
    for i, name in enumerate(CHAINS):
        now = [T0 + timedelta(minutes=i)]
        w = ChainWriter(Principal.WORKER.chain(name), clock=lambda now=now: now[0])
        out += [w.append(AuditKind.KEYS_LOADED, data=before.opened()), w.checkpoint(signer)]
        now[0] = T0 + timedelta(hours=2, seconds=i)
        out += [w.append(AuditKind.KEYS_LOADED, data=after.changed_since(before)),
                w.checkpoint(signer)]  # fmt: skip
    return out, stolen


@pytest.fixture
def stolen(store: AuditStore, verifier: KeystoreAuditVerifier, keys: FileKeyStore) -> list[str]:
    records, stolen = _chains(keys)
    # The indexer takes the kind: an indexer older than keys_loaded breaks these chains.
    assert index_records(store, verifier, records, start=900).breaks == []
    return stolen


def test_only_the_worker_writes_keys_loaded() -> None:
    assert may_write(Principal.WORKER.chain("accord.consent-0"), AuditKind.KEYS_LOADED)
    assert not may_write("console:host", AuditKind.KEYS_LOADED)


def test_the_report_lists_the_directory_in_use_and_the_revocation_once_each(
    store: AuditStore, stolen: list[str]
) -> None:
    opened, changed = governance_report(store, Window()).keys
    assert (opened.occasion, opened.serial, opened.chains) == ("opened", 0, 2)
    assert (opened.first, opened.last) == (T0, T0 + timedelta(minutes=1))
    assert opened.changes == {}
    assert (changed.occasion, changed.serial_before, changed.chains) == ("changed", 0, 2)
    assert changed.first == T0 + timedelta(hours=2)
    assert changed.changes == {"revoked": {"wmp": tuple(stolen)}}
    assert keys_loaded(store, Window(since=T0 + timedelta(hours=1))) == [changed]


def test_json_and_table_say_when_which_serial_and_which_keys_per_party(
    store: AuditStore, stolen: list[str], keys: FileKeyStore
) -> None:
    rep = governance_report(store, Window())
    data = json.loads(report_json(rep))["keys_loaded"]
    assert [(d["occasion"], d["serial"], d["chains"]) for d in data] == [
        ("opened", 0, 2), ("changed", 0, 2)
    ]  # fmt: skip
    assert data[1]["first_at"] == (T0 + timedelta(hours=2)).isoformat()
    assert data[1]["revoked"] == {"wmp": stolen}
    assert data[1]["added"] == {}
    text = report_text(rep)
    section = text[text.index("Worker key directories") : text.index("Deliveries and openings")]
    assert section.startswith("Worker key directories and changes (keys_loaded): 2\n")
    assert "changed from serial 0: 2 revoked" in section
    assert f"revoked wmp: {', '.join(stolen)}" in section
    # Ids only: no key's public (let alone private) bytes anywhere.
    for k in keys.keys(None):
        for shown in (base64.b64encode(k.public).decode(), k.public.hex()):
            assert shown not in section
            assert shown not in json.dumps(data)


def test_no_record_is_said_so(store: AuditStore) -> None:
    rep = governance_report(store, Window())
    assert json.loads(report_json(rep))["keys_loaded"] == []
    assert "Worker key directories and changes (keys_loaded): 0\n(none)" in report_text(rep)
