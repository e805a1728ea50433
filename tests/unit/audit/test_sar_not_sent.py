"""A share decided, then its event quarantined at ``deliver`` (all views or none): the
decision stays in the child's log, and every format says it was never sent."""

from __future__ import annotations

import json

from broker.audit import AuditKind, AuditRecord, KeystoreAuditVerifier
from broker.cli._audit_render import disclosure
from broker.governance import AuditStore, DisclosureEntry, disclosure_log
from broker.keys import FileKeyStore
from broker.linkage import Linker
from tests.unit.audit.conftest import CHILD_NHS, decision, index_records
from tests.unit.audit.test_sar_complete import _chain

EID = "6f1c1e3a-0000-4000-8000-00000000aa01"
SHOWN = "shared, not sent (quarantined)"


def _log(store: AuditStore, linker: Linker, eid: str = EID) -> list[DisclosureEntry]:
    child = linker.from_nhs_number(CHILD_NHS)
    return [e for e in disclosure_log(store, child) if e.event_id == eid]


def index_share_quarantined_at_deliver(
    store: AuditStore, verifier: KeystoreAuditVerifier, linker: Linker, keys: FileKeyStore
) -> None:
    """Decide spent the id and audited a share; Deliver then quarantined: nothing sent."""
    child = linker.from_nhs_number(CHILD_NHS)
    records = _chain([
        (AuditKind.RECEIVED, {"event_id": EID, "party": "wmp", "subject_keys": [child],
                              "data": {"type": "police.domestic_incident"}}),
        (AuditKind.DECIDED, {"event_id": EID, "party": "coord", "subject_keys": [child],
                             "data": decision("shared")}),
        (AuditKind.QUARANTINED, {"event_id": EID, "party": "wmp",
                                 "data": {"reason": "stage-failed", "stage": "deliver"}}),
    ], keys, "worker:accord.ingress.wmp-0", hours=11)  # fmt: skip
    assert index_records(store, verifier, records, start=1100).breaks == []


def test_a_share_quarantined_at_deliver_reads_not_sent_in_every_format(
    store: AuditStore, indexed: list[AuditRecord], verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    index_share_quarantined_at_deliver(store, verifier, linker, keys)
    line = _log(store, linker)
    assert [(e.kind, e.outcome, e.not_sent, e.reason) for e in line] == [
        ("decision", "shared", True, "quarantined")
    ]
    assert json.loads(disclosure(line, "json"))[0]["outcome"] == SHOWN
    for fmt in ("table", "csv", "html"):
        assert SHOWN in disclosure(line, fmt), fmt


def test_a_share_delivered_reads_shared_alone(
    store: AuditStore, indexed: list[AuditRecord], verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    """A later copy quarantined as a replay (before ``decide``) says nothing of the share."""
    child = linker.from_nhs_number(CHILD_NHS)
    eid = "6f1c1e3a-0000-4000-8000-00000000aa05"
    records = _chain([
        (AuditKind.RECEIVED, {"event_id": eid, "party": "wmp", "subject_keys": [child],
                              "data": {"type": "police.domestic_incident"}}),
        (AuditKind.DECIDED, {"event_id": eid, "party": "coord", "subject_keys": [child],
                             "data": decision("shared")}),
        (AuditKind.DELIVERED, {"event_id": eid, "party": "coord", "subject_keys": [child],
                               "data": {"topic": "accord.deliver.coord", "outcome": "shared",
                                        "fields": []}}),
        (AuditKind.QUARANTINED, {"event_id": eid, "party": "wmp",
                                 "data": {"reason": "replay", "stage": "open"}}),
    ], keys, "worker:accord.ingress.wmp-2", hours=14)  # fmt: skip
    assert index_records(store, verifier, records, start=1400).breaks == []
    got = [(e.kind, e.outcome, e.not_sent) for e in _log(store, linker, eid)]
    assert got == [("decision", "shared", False), ("delivered", None, False)]
