"""A child's disclosure log is complete and in an order that does not mislead.

IG review (fix 38): an event received about a child that went to nobody was in the index (its
``received`` record) but in no disclosure log; a consent record was listed at its claimed
``recorded_at``, above decisions taken before the broker received it, which withheld for
want of it; and the terminal's log and report said nothing of a chain the indexer found
broken.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from broker.audit import (
    AuditKind,
    AuditRecord,
    ChainWriter,
    KeystoreAuditSigner,
    KeystoreAuditVerifier,
)
from broker.cli._audit_render import disclosure
from broker.governance import AuditStore, disclosure_log, open_store
from broker.keys import FileKeyStore
from broker.linkage import Linker
from broker.principals import Principal
from tests.unit.audit.conftest import (
    CHILD_NHS,
    OTHER_CHILD_NHS,
    PARENT_NHS,
    T0,
    Run,
    decision,
    index_records,
    worker_chain,
)

HOUSING = "housing.eviction_risk"


def _chain(
    records: list[tuple[AuditKind, dict[str, Any]]], keys: FileKeyStore, chain: str, hours: int
) -> list[AuditRecord]:
    tick = iter(range(10_000))
    w = ChainWriter(chain, clock=lambda: T0 + timedelta(hours=hours, seconds=next(tick)))
    out = [w.append(kind, **kw) for kind, kw in records]
    return [*out, w.checkpoint(KeystoreAuditSigner(keys, Principal.WORKER))]


@pytest.fixture
def received_only(
    store: AuditStore, indexed: list[AuditRecord], verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> list[AuditRecord]:  # fmt: skip
    """e9: received about the child, no decision at all (no recipient); e10: about the child
    and another, decided for the other alone (a school gets only its own pupil)."""
    child, other = linker.from_nhs_number(CHILD_NHS), linker.from_nhs_number(OTHER_CHILD_NHS)
    records = _chain([
        (AuditKind.RECEIVED, {"event_id": "e9", "party": "sandwell-housing",
                              "subject_keys": [child], "data": {"type": HOUSING}}),
        (AuditKind.RECEIVED, {"event_id": "e10", "party": "wmp", "subject_keys": [child, other],
                              "data": {"type": "police.domestic_incident"}}),
        (AuditKind.DECIDED, {"event_id": "e10", "party": "school-1", "subject_keys": [other],
                             "data": decision("shared")}),
    ], keys, "worker:w5", hours=4)  # fmt: skip
    assert index_records(store, verifier, records, start=400).breaks == []
    return records


def test_an_event_received_about_the_child_that_went_to_nobody_is_in_their_log(
    store: AuditStore, received_only: list[AuditRecord], linker: Linker
) -> None:
    """e9 and e10 read alike: that e10 was decided for another child is theirs, not said."""
    log = disclosure_log(store, linker.from_nhs_number(CHILD_NHS))
    received = [e for e in log if e.kind == "received"]
    assert [(e.event_id, e.sender, e.event_type, e.recipient, e.outcome, e.reason, e.at)
            for e in received] == [
        ("e9", "sandwell-housing", HOUSING, "", "not_shared", "no-recipient",
         T0 + timedelta(hours=4)),
        ("e10", "wmp", "police.domestic_incident", "", "not_shared", "no-recipient",
         T0 + timedelta(hours=4, seconds=1)),
    ]  # fmt: skip
    assert received[0].as_dict()["audit_ref"] == "worker:w5#0"
    # The other child's share in e10 is theirs: no line of it here.
    assert [e for e in log if e.event_id == "e10" and e.kind != "received"] == []


def test_an_event_with_a_decision_about_the_child_is_listed_by_its_decisions_alone(
    store: AuditStore, received_only: list[AuditRecord], linker: Linker
) -> None:
    """e1 and e2 were received and decided: no separate 'received' line repeats them."""
    log = disclosure_log(store, linker.from_nhs_number(CHILD_NHS))
    assert [(e.kind, e.event_id) for e in log if e.event_id in ("e1", "e2")] == [
        ("decision", "e1"), ("decision", "e1"), ("delivered", "e1"),
        ("decision", "e2"), ("delivered", "e2"), ("opened", "e1"),
    ]  # fmt: skip


def test_a_decision_found_under_another_key_of_the_child_answers_their_received_record(
    store: AuditStore, received_only: list[AuditRecord], verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    """Two keys of one child (a search by name and date of birth merges them): an event
    received under one and decided under the other is listed by its decision alone."""
    first, second = linker.from_nhs_number(CHILD_NHS), linker.from_nhs_number(PARENT_NHS)
    records = _chain([
        (AuditKind.RECEIVED, {"event_id": "e30", "party": "wmp", "subject_keys": [second]}),
        (AuditKind.DECIDED, {"event_id": "e30", "party": "coord", "subject_keys": [first],
                             "data": decision("shared")}),
    ], keys, "worker:w7", hours=7)  # fmt: skip
    assert index_records(store, verifier, records, start=700).breaks == []
    log = disclosure_log(store, first, second)
    assert [e.kind for e in log if e.event_id == "e30"] == ["decision"]
    assert [e.event_id for e in log if e.kind == "received"] == ["e9", "e10"]


def test_the_received_line_is_in_every_format(
    store: AuditStore, received_only: list[AuditRecord], linker: Linker
) -> None:
    log = disclosure_log(store, linker.from_nhs_number(CHILD_NHS))
    [row] = [r for r in csv.DictReader(io.StringIO(disclosure(log, "csv")))
             if r["event_id"] == "e9"]  # fmt: skip
    assert (row["kind"], row["sender"], row["event_type"], row["outcome"], row["reason"]) == (
        "received",
        "sandwell-housing",
        HOUSING,
        "not_shared",
        "no-recipient",
    )
    assert [d["kind"] for d in json.loads(disclosure(log, "json"))].count("received") == 2
    assert "no-recipient" in disclosure(log, "table")
    assert "no-recipient" in disclosure(log, "html")


@pytest.fixture
def late_consent(
    store: AuditStore, indexed: list[AuditRecord], verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> list[AuditRecord]:  # fmt: skip
    """Consent recorded at 5:00 by the authority, received by the broker at 5:00:02, after
    a decision at 5:00:01 withheld for want of it."""
    child = linker.from_nhs_number(CHILD_NHS)
    given = {"state": "given", "purposes": ["early_help"], "recipients": ["*"],
             "recorded_at": (T0 + timedelta(hours=5) - timedelta(minutes=1)).isoformat(),
             "valid_until": None}  # fmt: skip
    records = _chain([
        (AuditKind.RECEIVED, {"event_id": "e20", "party": "wmp", "subject_keys": [child]}),
        (AuditKind.DECIDED, {"event_id": "e20", "party": "hub-a", "subject_keys": [child],
                             "data": decision("not_shared")}),
        (AuditKind.CONSENT_RECORDED, {"event_id": "c20", "party": "sandwell-coord",
                                      "subject_keys": [child], "data": given}),
    ], keys, "worker:w6", hours=5)  # fmt: skip
    assert index_records(store, verifier, records, start=600).breaks == []
    return records


def test_consent_is_listed_when_the_broker_received_it_with_its_recorded_time_beside(
    store: AuditStore, late_consent: list[AuditRecord], linker: Linker
) -> None:
    log = disclosure_log(store, linker.from_nhs_number(CHILD_NHS))
    late = [e for e in log if e.event_id in ("e20", "c20")]
    assert [e.kind for e in late] == ["decision", "consent"]  # it could not see it
    withheld, consent = late
    assert withheld.reason == "consent-missing"
    assert consent.at == T0 + timedelta(hours=5, seconds=2)
    assert consent.recorded_at == T0 + timedelta(hours=5) - timedelta(minutes=1)
    as_json = consent.as_dict()
    assert (as_json["at"], as_json["recorded_at"]) == (
        "2026-11-22T13:00:02+00:00",
        "2026-11-22T12:59:00+00:00",
    )
    [row] = [r for r in csv.DictReader(io.StringIO(disclosure(late, "csv")))
             if r["kind"] == "consent"]  # fmt: skip
    assert (row["at"], row["recorded_at"]) == (as_json["at"], as_json["recorded_at"])
    for fmt in ("table", "html"):
        text = disclosure(late, fmt)
        assert "consent recorded" in text
        assert "2026-11-22T12:59:00+00:00" in text
        assert "2026-11-22T13:00:02+00:00" in text
    # Every other line has no recorded time of its own.
    assert withheld.as_dict()["recorded_at"] is None


@pytest.fixture
def broken(
    store: AuditStore,
    indexed: list[AuditRecord],
    verifier: KeystoreAuditVerifier,
    linker: Linker,
    keys: FileKeyStore,
) -> None:
    """worker:w2 broken: a record modified, which its writer's signed checkpoint exposes."""
    records = worker_chain(linker, keys, chain="worker:w2")
    bad = records[3].model_copy(update={"party": "hub-b"})
    summary = index_records(store, verifier, [*records[:3], bad, *records[4:]], start=900)
    assert [b.chain for b in summary.breaks] == ["worker:w2"]


_WARNING = (
    "accord: warning: the indexer found audit chains broken (worker:w2): their records after "
    "the break are not indexed, so this may be incomplete; treat it as a security incident "
    "and run 'accord audit verify'\n"
)


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_the_terminals_log_warns_of_a_broken_chain_on_stderr_and_exits_1(
    fmt: str, broken: None, audit_db_url: str, run_cli: Run, lookups: list[dict[str, Any]]
) -> None:
    code, out, err = run_cli(["audit", "subject", "--nhs-number", CHILD_NHS, "--db",
                              audit_db_url, "--format", fmt, "--reason", "complaint",
                              "--as", "ig.jo"])  # fmt: skip
    assert (code, err) == (1, _WARNING)
    assert "e1" in out  # the log is still printed, its data's shape unchanged
    if fmt == "json":
        assert isinstance(json.loads(out), list)


def test_the_terminals_log_says_nothing_of_chains_when_none_is_broken(
    indexed: list[AuditRecord], audit_db_url: str, run_cli: Run, lookups: list[dict[str, Any]]
) -> None:
    code, _, err = run_cli(["audit", "subject", "--nhs-number", CHILD_NHS, "--db",
                            audit_db_url, "--reason", "complaint", "--as", "ig.jo"])  # fmt: skip
    assert (code, err) == (0, "")


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_the_report_warns_of_a_broken_chain_on_stderr_and_names_it_in_json(
    fmt: str, broken: None, audit_db_url: str, run_cli: Run, lookups: list[dict[str, Any]]
) -> None:
    code, out, err = run_cli(["audit", "report", "--db", audit_db_url, "--format", fmt,
                              "--reason", "oversight", "--as", "ig.jo"])  # fmt: skip
    assert (code, err) == (0, _WARNING)
    if fmt == "json":
        assert json.loads(out)["broken_chains"] == ["worker:w2"]


def test_the_reports_json_lists_no_broken_chain_when_none_is(
    indexed: list[AuditRecord], audit_db_url: str, run_cli: Run, lookups: list[dict[str, Any]]
) -> None:
    code, out, err = run_cli(["audit", "report", "--db", audit_db_url, "--format", "json",
                              "--reason", "oversight", "--as", "ig.jo"])  # fmt: skip
    assert (code, err) == (0, "")
    assert json.loads(out)["broken_chains"] == []


def test_received_events_find_their_decisions_by_event_not_by_walking_the_childs_records(
    tmp_path: Path,
) -> None:
    """The plan SQLite chooses (on an empty index: the plan, not the timing, is under test):
    each event received about a child is checked against its own decisions (by event id),
    never against every record of theirs, nor the rest of the receipt's chain."""
    store = open_store(None, home=tmp_path)
    conn = store._conn  # type: ignore[attr-defined]  # the SQLite connection under test
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    try:
        store.subject_records("n:" + "0" * 32)
    finally:
        conn.set_trace_callback(None)
    plans = [
        row[3]
        for sql in seen
        if "'received'" in sql
        for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")
    ]
    store.close()
    assert any("SEARCH d USING INDEX audit_records_event_party (event_id=?)" in p for p in plans)
    assert not [p for p in plans if p.startswith("SEARCH ds ") and "chain=?" not in p], plans
    # Not the primary key (chain, seq > the receipt's): the rest of the chain, every time.
    assert not [p for p in plans if p.startswith("SEARCH d ") and "event_party" not in p], plans


def _received(store: AuditStore, linker: Linker, event_id: str) -> list[tuple[Any, ...]]:
    log = disclosure_log(store, linker.from_nhs_number(CHILD_NHS))
    return [(e.kind, e.sender, e.outcome, e.reason) for e in log if e.event_id == event_id]


def test_an_event_whose_decision_failed_reads_quarantined_not_no_recipient(
    store: AuditStore, indexed: list[AuditRecord], verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    """Decide raised: the receipt stands (run_chain keeps earlier stages' effects), then a
    ``quarantined`` record (stage-failed, no subject keys): not "no agreement routes it"."""
    child = linker.from_nhs_number(CHILD_NHS)
    eid = "6f1c1e3a-0000-4000-8000-000000000001"
    records = _chain([
        (AuditKind.RECEIVED, {"event_id": eid, "party": "wmp", "subject_keys": [child],
                              "data": {"type": "police.domestic_incident"}}),
        (AuditKind.QUARANTINED, {"event_id": eid, "party": "wmp",
                                 "data": {"reason": "stage-failed", "stage": "decide"}}),
    ], keys, "worker:w8", hours=8)  # fmt: skip
    assert index_records(store, verifier, records, start=800).breaks == []
    assert _received(store, linker, eid) == [("received", "wmp", "not_shared", "quarantined")]
    log = disclosure_log(store, linker.from_nhs_number(CHILD_NHS))
    line = [e for e in log if e.event_id == eid]
    assert "quarantined" in disclosure(line, "csv")
    assert "quarantined" in disclosure(line, "html")


def test_a_later_copy_quarantined_before_link_says_nothing_of_how_the_receipt_went(
    store: AuditStore, indexed: list[AuditRecord], verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    """e11 was decided (no recipient; its id spent), then a copy of it was quarantined as a
    replay at ``open``: that copy never reached a decision, the receipt did."""
    child = linker.from_nhs_number(CHILD_NHS)
    eid = "6f1c1e3a-0000-4000-8000-000000000011"
    records = _chain([
        (AuditKind.RECEIVED, {"event_id": eid, "party": "wmp", "subject_keys": [child]}),
        (AuditKind.QUARANTINED, {"event_id": eid, "party": "wmp",
                                 "data": {"reason": "replay", "stage": "open"}}),
    ], keys, "worker:w11", hours=11)  # fmt: skip
    assert index_records(store, verifier, records, start=1100).breaks == []
    assert _received(store, linker, eid) == [("received", "wmp", "not_shared", "no-recipient")]


def test_an_event_re_sent_after_a_failed_decision_is_listed_once_as_it_ended(
    store: AuditStore, indexed: list[AuditRecord], verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    """Quarantined at decide (its id unspent), re-sent and decided with no recipient for the
    child: one line, by the last receipt, not "quarantined"."""
    child = linker.from_nhs_number(CHILD_NHS)
    eid = "6f1c1e3a-0000-4000-8000-000000000012"
    received = {"event_id": eid, "party": "wmp", "subject_keys": [child]}
    records = _chain([
        (AuditKind.RECEIVED, received),
        (AuditKind.QUARANTINED, {"event_id": eid, "party": "wmp",
                                 "data": {"reason": "stage-failed", "stage": "decide"}}),
        (AuditKind.RECEIVED, received),
    ], keys, "worker:w12", hours=12)  # fmt: skip
    assert index_records(store, verifier, records, start=1200).breaks == []
    log = disclosure_log(store, linker.from_nhs_number(CHILD_NHS))
    assert [(e.reason, e.seq) for e in log if e.event_id == eid] == [("no-recipient", 2)]


def test_another_senders_event_under_the_same_id_does_not_hide_the_received_line(
    store: AuditStore, indexed: list[AuditRecord], verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    """Event ids are each sender's to choose: housing's event, sent to no one, shares an id
    with a police event decided about the child, each on its own sender's chain."""
    child = linker.from_nhs_number(CHILD_NHS)
    eid = "6f1c1e3a-0000-4000-8000-000000000002"
    housing = _chain([
        (AuditKind.RECEIVED, {"event_id": eid, "party": "sandwell-housing",
                              "subject_keys": [child], "data": {"type": HOUSING}}),
    ], keys, "worker:accord.ingress.sandwell-housing-0", hours=9)  # fmt: skip
    police = _chain([
        (AuditKind.RECEIVED, {"event_id": eid, "party": "wmp", "subject_keys": [child],
                              "data": {"type": "police.domestic_incident"}}),
        (AuditKind.DECIDED, {"event_id": eid, "party": "coord", "subject_keys": [child],
                             "data": decision("shared")}),
    ], keys, "worker:accord.ingress.wmp-0", hours=9)  # fmt: skip
    assert index_records(store, verifier, [*housing, *police], start=900).breaks == []
    got = _received(store, linker, eid)
    assert ("received", "sandwell-housing", "not_shared", "no-recipient") in got
    assert sorted(k for k, *_ in got) == ["decision", "received"]  # police's by its decision


def test_decisions_about_others_in_the_event_are_not_told_in_any_format(
    store: AuditStore, indexed: list[AuditRecord], verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    """Only a decision naming the other child (Operation Encompass: a sibling's school): the
    child's line reads as one with no decision at all, in every format that leaves."""
    child, other = linker.from_nhs_number(CHILD_NHS), linker.from_nhs_number(OTHER_CHILD_NHS)
    alone, shared = "6f1c1e3a-0000-4000-8000-000000000003", "6f1c1e3a-0000-4000-8000-000000000004"
    records = _chain([
        (AuditKind.RECEIVED, {"event_id": alone, "party": "wmp", "subject_keys": [child],
                              "data": {"type": "police.domestic_incident"}}),
        (AuditKind.RECEIVED, {"event_id": shared, "party": "wmp", "subject_keys": [child, other],
                              "data": {"type": "police.domestic_incident"}}),
        (AuditKind.DECIDED, {"event_id": shared, "party": "school-1", "subject_keys": [other],
                             "data": decision("not_shared")}),
    ], keys, "worker:w10", hours=10)  # fmt: skip
    assert index_records(store, verifier, records, start=1000).breaks == []
    log = disclosure_log(store, linker.from_nhs_number(CHILD_NHS))
    a, b = [e for e in log if e.event_id in (alone, shared)]
    as_json = [{k: v for k, v in e.as_dict().items() if k not in ("event_id", "at", "audit_ref")}
               for e in (a, b)]  # fmt: skip
    assert as_json[0] == as_json[1]
    assert a.reason == "no-recipient"
    for fmt in ("table", "csv", "json", "html"):
        assert "school-1" not in disclosure([a, b], fmt)
        assert "not-in-any-share" not in disclosure([a, b], fmt)


def test_the_csv_keeps_its_columns_in_place_and_adds_recorded_at_then_sent_last(
    store: AuditStore, late_consent: list[AuditRecord], linker: Linker
) -> None:
    """A CSV reader taking columns by position reads the same columns as before."""
    log = disclosure_log(store, linker.from_nhs_number(CHILD_NHS))
    header = next(csv.reader(io.StringIO(disclosure(log, "csv"))))
    assert header == [
        "at", "kind", "outcome", "recipient", "event_type", "sender", "agreement_id",
        "purpose", "lawful_basis", "clauses", "fields_shared", "fields_withheld", "consent",
        "reason", "override_grounds", "review", "opened_by", "purposes", "recipients",
        "valid_until", "recalls", "event_id", "audit_ref", "matched_on", "recorded_at", "sent",
        "transforms", "consent_rule",
    ]  # fmt: skip
    assert list(json.loads(disclosure(log, "json"))[0]) == list(log[0].as_dict())
