"""A share decided, then its event quarantined at ``deliver`` (all views or none): the
decision stays in the child's log, and every format says it was never sent: a reader's
(table, HTML) in its outcome, a machine's (JSON, CSV) in ``sent``, its ``outcome`` one of
the documented values."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from broker.audit import AuditKind, AuditRecord, KeystoreAuditVerifier
from broker.cli._audit_render import disclosure
from broker.governance import AuditStore, DisclosureEntry, disclosure_log, override_entry
from broker.governance._sql_received import unsent_shares
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
    for fmt in ("table", "html"):
        assert SHOWN in disclosure(line, fmt), fmt


def test_json_and_csv_keep_the_decided_outcome_and_say_sent_false(
    store: AuditStore, indexed: list[AuditRecord], verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    """A consumer filtering ``outcome == "shared"`` keeps the row; ``sent`` says it never
    went, in JSON and in CSV's last column (every earlier column keeps its place)."""
    index_share_quarantined_at_deliver(store, verifier, linker, keys)
    line = _log(store, linker)
    [as_json] = json.loads(disclosure(line, "json"))
    # As docs/governance.md spells it: the decided outcome, why it was not sent, sent false.
    assert (as_json["outcome"], as_json["reason"], as_json["sent"]) == (
        "shared", "quarantined", False
    )  # fmt: skip
    [row] = csv.DictReader(io.StringIO(disclosure(line, "csv")))
    assert (row["outcome"], row["reason"], row["sent"]) == ("shared", "quarantined", "false")
    assert SHOWN not in disclosure(line, "csv")
    everyone = disclosure_log(store, linker.from_nhs_number(CHILD_NHS))
    assert {
        e["sent"] for e in json.loads(disclosure(everyone, "json")) if e["event_id"] != EID
    } == {None}


def test_an_overrides_own_line_is_marked_not_sent(
    store: AuditStore, indexed: list[AuditRecord], verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    """The console's page for one override (``override_entry``) says what the log says."""
    child = linker.from_nhs_number(CHILD_NHS)
    eid = "6f1c1e3a-0000-4000-8000-00000000aa07"
    records = _chain([
        (AuditKind.RECEIVED, {"event_id": eid, "party": "wmp", "subject_keys": [child],
                              "data": {"type": "police.domestic_incident"}}),
        (AuditKind.DECIDED, {"event_id": eid, "party": "coord", "subject_keys": [child],
                             "data": decision("shared_override", override_grounds="risk")}),
        (AuditKind.QUARANTINED, {"event_id": eid, "party": "wmp",
                                 "data": {"reason": "stage-failed", "stage": "deliver"}}),
    ], keys, "worker:accord.ingress.wmp-3", hours=15)  # fmt: skip
    assert index_records(store, verifier, records, start=1500).breaks == []
    entry = override_entry(store, eid, "coord")
    assert entry is not None
    assert (entry.outcome, entry.not_sent, entry.reason) == ("shared_override", True, "quarantined")


def test_a_delivery_between_the_share_and_a_quarantine_of_its_id_says_it_was_sent(
    store: AuditStore, indexed: list[AuditRecord], verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    """Only a quarantine with no ``delivered`` of that event to that recipient between marks
    the share; another recipient's share of the same event, not delivered, is still marked."""
    child = linker.from_nhs_number(CHILD_NHS)
    eid = "6f1c1e3a-0000-4000-8000-00000000aa06"
    delivered = {"topic": "accord.deliver.coord", "outcome": "shared", "fields": []}
    records = _chain([
        (AuditKind.RECEIVED, {"event_id": eid, "party": "wmp", "subject_keys": [child],
                              "data": {"type": "police.domestic_incident"}}),
        (AuditKind.DECIDED, {"event_id": eid, "party": "coord", "subject_keys": [child],
                             "data": decision("shared")}),
        (AuditKind.DECIDED, {"event_id": eid, "party": "hub-a", "subject_keys": [child],
                             "data": decision("shared")}),
        (AuditKind.DELIVERED, {"event_id": eid, "party": "coord", "subject_keys": [child],
                               "data": delivered}),
        (AuditKind.QUARANTINED, {"event_id": eid, "party": "wmp",
                                 "data": {"reason": "stage-failed", "stage": "deliver"}}),
    ], keys, "worker:accord.ingress.wmp-4", hours=16)  # fmt: skip
    assert index_records(store, verifier, records, start=1600).breaks == []
    got = [(e.kind, e.recipient, e.not_sent) for e in _log(store, linker, eid)]
    assert sorted(got) == [
        ("decision", "coord", False), ("decision", "hub-a", True), ("delivered", "coord", False)
    ]  # fmt: skip


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


def test_unsent_shares_reads_deliveries_only_of_events_quarantined_after_a_share() -> None:
    """A child's log may list thousands of shares and deliveries: with no quarantine after
    a share, no delivery is looked up, and deliveries are read from columns, never parsed."""
    asked: list[str] = []
    quarantine = json.dumps({"data": {"stage": "deliver"}})

    def q(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        asked.append(sql)
        if "'quarantined'" in sql:
            return [("worker:x-0", 9, "e-q", quarantine)] if "e-q" in params else []
        return [("worker:x-0", 5, "e-q", "coord")]

    assert unsent_shares(q, [("worker:x-0", 1, "e-ok", "coord")]) == set()
    assert not any("'delivered'" in sql for sql in asked)
    asked.clear()
    shares = [("worker:x-0", 1, "e-ok", "coord"), ("worker:x-0", 3, "e-q", "coord"),
              ("worker:x-0", 4, "e-q", "hub-a")]  # fmt: skip
    assert unsent_shares(q, shares) == {("worker:x-0", 4)}
    [delivered] = [sql for sql in asked if "'delivered'" in sql]
    assert "body" not in delivered
