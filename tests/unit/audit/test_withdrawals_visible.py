"""Consent records, withdrawal notices and deliveries in a child's disclosure log and the report.

IG review findings 2 and 9: a withdrawal recorded for a child, and the notices telling past
recipients to stop, were in the audit log but in no IG tool; nor were deliveries.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from typing import Any

import pytest

from broker.audit import (
    AuditKind,
    AuditRecord,
    ChainWriter,
    KeystoreAuditSigner,
    KeystoreAuditVerifier,
)
from broker.cli._audit_report import report_json, report_text
from broker.governance import AuditStore, Window, disclosure_log, governance_report
from broker.keys import FileKeyStore
from broker.linkage import Linker
from broker.principals import Principal
from tests.unit.audit.conftest import (
    CHILD_NHS,
    OTHER_CHILD_NHS,
    OTHER_WITHDRAWAL_ID,
    T0,
    WITHDRAWAL_ID,
    Run,
    index_records,
    withdrawal_chain,
)


@pytest.fixture
def withdrawn(
    store: AuditStore, indexed: list[AuditRecord], verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> list[AuditRecord]:  # fmt: skip
    records = withdrawal_chain(linker, keys)
    assert index_records(store, verifier, records, start=500).breaks == []
    return records


def test_a_withdrawal_its_notices_and_a_refused_record_are_in_the_childs_log(
    store: AuditStore, withdrawn: list[AuditRecord], linker: Linker
) -> None:
    log = disclosure_log(store, linker.from_nhs_number(CHILD_NHS))
    consent = [e for e in log if e.kind in ("consent", "consent_refused", "withdrawal_notice")]
    assert [(e.kind, e.event_id, e.sender, e.recipient, e.consent, e.outcome, e.reason)
            for e in consent] == [
        ("consent", WITHDRAWAL_ID, "sandwell-coord", "", "withdrawn", None, None),
        ("withdrawal_notice", WITHDRAWAL_ID, None, "coord", None, "delivered", None),
        ("withdrawal_notice", WITHDRAWAL_ID, None, "school-1", None, "undelivered",
         "recipient-key-unavailable"),
        ("consent_refused", "c-refused", "wmp", "", "given", None, "not-a-consent-authority"),
    ]  # fmt: skip
    recorded, to_coord, to_school, _ = consent
    # Listed when the broker received it, its own recorded_at, ten minutes earlier, beside it.
    assert recorded.at == T0 + timedelta(hours=1)
    assert recorded.recorded_at == T0 + timedelta(minutes=50)
    assert (recorded.purposes, recorded.recipients) == (("early_help",), ("*",))
    assert (to_coord.recalls, to_school.recalls) == (("e1",), ("e2",))
    assert [e.at for e in log] == sorted(e.at for e in log)
    text = json.dumps([e.as_dict() for e in log])
    assert OTHER_WITHDRAWAL_ID not in text
    assert "e-other" not in text
    assert "hv-sandwell" not in text


def test_the_other_childs_log_holds_only_their_withdrawal(
    store: AuditStore, withdrawn: list[AuditRecord], linker: Linker
) -> None:
    log = disclosure_log(store, linker.from_nhs_number(OTHER_CHILD_NHS))
    assert [(e.kind, e.event_id, e.recipient, e.recalls) for e in log] == [
        ("consent", OTHER_WITHDRAWAL_ID, "", ()),
        ("withdrawal_notice", OTHER_WITHDRAWAL_ID, "hub-a", ("e-other",)),
    ]


def test_a_delivery_line_says_when_to_whom_and_which_fields_were_sent(
    store: AuditStore, indexed: list[AuditRecord], verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    """What was sent is the delivery's own field list, not the decision's: a 'shared'
    decision is no proof it was delivered."""
    child = linker.from_nhs_number(CHILD_NHS)
    w = ChainWriter("worker:w4", clock=lambda: T0 + timedelta(hours=3))
    sent = w.append(AuditKind.DELIVERED, event_id="e2", party="school-1", subject_keys=[child],
                    data={"topic": "accord.deliver.school-1", "outcome": "shared_override",
                          "fields": ["subject.name"]})  # fmt: skip
    signed = [sent, w.checkpoint(KeystoreAuditSigner(keys, Principal.WORKER))]
    assert index_records(store, verifier, signed, start=300).breaks == []
    [line] = [e for e in disclosure_log(store, child) if e.chain == "worker:w4"]
    assert (line.kind, line.at, line.recipient, line.fields_shared) == (
        "delivered",
        T0 + timedelta(hours=3),
        "school-1",
        ("subject.name",),
    )
    # The decision's sender, agreement and grounds are carried over; its review is not.
    assert (line.sender, line.agreement_id, line.review) == ("wmp", "isa-1", None)
    assert line.as_dict()["audit_ref"] == "worker:w4#0"


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "html"])
def test_accord_audit_subject_lists_consent_notices_and_deliveries_in_every_format(
    fmt: str, store: AuditStore, withdrawn: list[AuditRecord], audit_db_url: str, run_cli: Run,
    lookups: list[dict[str, Any]],
) -> None:  # fmt: skip
    code, out, err = run_cli(
        ["audit", "subject", "--nhs-number", CHILD_NHS, "--db", audit_db_url, "--format", fmt,
         "--reason", "subject_access_request", "--as", "ig.jo"]
    )  # fmt: skip
    assert (code, err) == (0, "")
    for shown in (
        WITHDRAWAL_ID,
        "sandwell-coord",
        "withdrawn",
        "recipient-key-unavailable",
        "withdrawal_notice",
        "delivered",
        "undelivered",
        "not-a-consent-authority",
    ):
        assert shown in out, shown  # fmt: skip
    for hidden in (OTHER_WITHDRAWAL_ID, "e-other", "hv-sandwell", CHILD_NHS):
        assert hidden not in out, hidden
    if fmt == "json":
        lines = json.loads(out)
        [undelivered] = [e for e in lines if e["outcome"] == "undelivered"]
        assert (undelivered["recipient"], undelivered["recalls"]) == ("school-1", ["e2"])
        assert undelivered["reason"] == "recipient-key-unavailable"
        [recorded] = [e for e in lines if e["kind"] == "consent"]
        assert (recorded["sender"], recorded["consent"], recorded["purposes"]) == (
            "sandwell-coord",
            "withdrawn",
            ["early_help"],
        )
        assert [e["recipient"] for e in lines if e["kind"] == "delivered"] == ["coord", "school-1"]
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out)))
        [notice] = [r for r in rows if r["outcome"] == "undelivered"]
        assert (notice["recipient"], notice["recalls"]) == ("school-1", "e2")
        [recorded] = [r for r in rows if r["kind"] == "consent"]
        assert (recorded["sender"], recorded["consent"], recorded["recipients"]) == (
            "sandwell-coord",
            "withdrawn",
            "*",
        )


def test_the_report_lists_withdrawal_notices_and_calls_out_the_undelivered(
    store: AuditStore, withdrawn: list[AuditRecord], linker: Linker
) -> None:
    rep = governance_report(store, Window())
    got = [(n.withdrawal_id, n.recipient, n.event_ids, n.undelivered) for n in rep.withdrawals]
    assert got == [
        (WITHDRAWAL_ID, "coord", ("e1",), None),
        (WITHDRAWAL_ID, "school-1", ("e2",), "recipient-key-unavailable"),
        (OTHER_WITHDRAWAL_ID, "hub-a", ("e-other",), "recipient-key-unavailable"),
    ]  # fmt: skip
    assert [n.recipient for n in rep.undelivered_notices] == ["school-1", "hub-a"]
    assert rep.withdrawals[1].subject_keys == (linker.from_nhs_number(CHILD_NHS),)
    data = json.loads(report_json(rep))["withdrawal_notices"]
    assert [(n["recipient"], n["state"], n["action_needed"]) for n in data] == [
        ("coord", "delivered", False),
        ("school-1", "undelivered", True),
        ("hub-a", "undelivered", True),
    ]
    text = report_text(rep)
    assert "Consent withdrawal notices: 3, undelivered: 2" in text
    action = text[text.index("ACTION NEEDED") : text.index("Delivered\n")]
    assert "school-1" in action
    assert "hub-a" in action
    assert "coord " not in action


def test_the_report_window_bounds_its_withdrawal_notices(
    store: AuditStore, withdrawn: list[AuditRecord]
) -> None:
    assert governance_report(store, Window(until=T0 + timedelta(hours=1))).withdrawals == ()
    later = governance_report(store, Window(since=T0 + timedelta(hours=1, minutes=2)))
    assert [n.recipient for n in later.withdrawals] == ["school-1", "hub-a"]
    assert "Consent withdrawal notices: 0, undelivered: 0\n(none)" in report_text(
        governance_report(store, Window(until=T0))
    )


def test_accord_audit_report_records_the_children_of_its_withdrawal_notices(
    store: AuditStore, withdrawn: list[AuditRecord], audit_db_url: str, run_cli: Run,
    lookups: list[dict[str, Any]], linker: Linker,
) -> None:  # fmt: skip
    code, out, _ = run_cli(["audit", "report", "--db", audit_db_url, "--format", "json",
                            "--reason", "oversight", "--as", "ig.jo"])  # fmt: skip
    assert code == 0
    assert [n["recipient"] for n in json.loads(out)["withdrawal_notices"]] == [
        "coord", "school-1", "hub-a"
    ]  # fmt: skip
    [lookup] = lookups
    for nhs in (CHILD_NHS, OTHER_CHILD_NHS):
        assert linker.from_nhs_number(nhs) in lookup["subject_keys"]
