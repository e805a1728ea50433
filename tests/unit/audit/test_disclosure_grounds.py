"""A decision made under several agreements: every ground in the log, counted under each."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from broker.audit import AuditKind, AuditRecord, ChainWriter, KeystoreAuditSigner
from broker.audit import KeystoreAuditVerifier as Verifier
from broker.cli._audit_render import disclosure
from broker.governance import AuditStore, Window, disclosure_log, governance_report
from broker.keys import FileKeyStore
from broker.linkage import Linker
from broker.principals import Principal
from tests.unit.audit.conftest import CHILD_NHS, T0, decision, index_records

EARLY_HELP = {"article6": "public_task", "article9": "health_or_social_care", "article10": None}
SAFEGUARDING = {"article6": "public_task", "article9": "safeguarding_children", "article10": None}


def ground(agreement: str, clause: str, purpose: str, basis: dict[str, Any]) -> dict[str, Any]:
    return {"agreement_id": agreement, "agreement_version": "1", "clause_id": clause,
            "purpose": purpose, "lawful_basis": basis, "consent": "not_required"}  # fmt: skip


def two_agreements(**extra: Any) -> dict[str, Any]:
    """The need-level-4 share to the MASH: under early help, and under the MASH agreement."""
    return decision(
        "shared",
        agreement_id="early-help",
        purpose="early_help",
        lawful_basis=EARLY_HELP,
        clause_ids=["to-mash", "to-mash-safeguarding"],
        consent="given",
        grounds=[
            ground("early-help", "to-mash", "early_help", EARLY_HELP),
            ground("mash", "to-mash-safeguarding", "safeguarding", SAFEGUARDING),
        ],
        **extra,
    )


def overrides_under_two_and_one_agreements(
    keys: FileKeyStore, child: str, at: datetime
) -> list[AuditRecord]:
    """A signed chain of two overrides for ``child``: e20 to the MASH under the early-help and
    the MASH agreements, e21 to the team as written before grounds were listed (isa-1)."""
    w = ChainWriter("worker:w8", clock=lambda: at)
    override = {**two_agreements(), "outcome": "shared_override", "review_required": True,
                "override_grounds": "safeguarding_concern"}  # fmt: skip
    records = [
        w.append(AuditKind.DECIDED, event_id="e20", party="mash", subject_keys=[child],
                 data=override),
        w.append(AuditKind.DECIDED, event_id="e21", party="coord", subject_keys=[child],
                 data=decision("shared_override")),
    ]  # fmt: skip
    records.append(w.checkpoint(KeystoreAuditSigner(keys, Principal.WORKER)))
    return records


def signed(keys: FileKeyStore, build: list[tuple[AuditKind, str, str, dict[str, Any]]],
           subject: str) -> list[AuditRecord]:  # fmt: skip
    tick = iter(range(1000))
    w = ChainWriter("worker:w7", clock=lambda: T0 + timedelta(minutes=next(tick)))
    out = [
        w.append(kind, event_id=event, party=party,
                 subject_keys=[subject] if kind is AuditKind.DECIDED else [], data=data)
        for kind, event, party, data in build
    ]  # fmt: skip
    return [*out, w.checkpoint(KeystoreAuditSigner(keys, Principal.WORKER))]


def test_a_share_under_two_agreements_lists_every_ground_in_the_disclosure_log(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier, linker: Linker
) -> None:
    child = linker.from_nhs_number(CHILD_NHS)
    opened = {"by": "mash/duty-1", "purpose": "safeguarding", "at": T0.isoformat()}
    records = signed(keys, [(AuditKind.DECIDED, "e7", "mash", two_agreements()),
                            (AuditKind.OPENED, "e7", "mash", opened)], child)  # fmt: skip
    assert index_records(store, verifier, records).breaks == []
    decided, seen = disclosure_log(store, child)
    for entry in (decided, seen):  # the opening is of a record shared on both grounds
        got = [(g.agreement_id, g.clause_id, g.purpose, g.lawful_basis) for g in entry.grounds]
        assert got == [
            ("early-help", "to-mash", "early_help", "public_task; Art 9: health_or_social_care"),
            ("mash", "to-mash-safeguarding", "safeguarding",
             "public_task; Art 9: safeguarding_children"),
        ]  # fmt: skip
    as_json = decided.as_dict()
    assert [g["agreement_id"] for g in as_json["grounds"]] == ["early-help", "mash"]
    assert [g["purpose"] for g in as_json["grounds"]] == ["early_help", "safeguarding"]
    rows = list(csv.DictReader(io.StringIO(disclosure([decided, seen], "csv"))))
    assert rows[0]["agreement_id"] == "early-help | mash"
    assert rows[0]["purpose"] == "early_help | safeguarding"
    assert rows[0]["lawful_basis"] == (
        "public_task; Art 9: health_or_social_care | public_task; Art 9: safeguarding_children"
    )
    assert rows[1]["purpose"] == "safeguarding"  # an opening's purpose is its own
    assert rows[1]["agreement_id"] == "early-help | mash"
    for fmt in ("table", "html"):
        assert "early-help | mash" in disclosure([decided, seen], fmt)
    assert [g["agreement_id"] for g in json.loads(disclosure([decided], "json"))[0]["grounds"]] == [
        "early-help", "mash",
    ]  # fmt: skip


def test_a_record_written_without_grounds_has_its_one_agreement_as_its_ground(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier, linker: Linker
) -> None:
    child = linker.from_nhs_number(CHILD_NHS)
    records = signed(keys, [
        (AuditKind.DECIDED, "e8", "coord", decision("shared")),
        (AuditKind.DECIDED, "e8", "hub-a", decision("not_shared")),
    ], child)  # fmt: skip
    assert index_records(store, verifier, records).breaks == []
    shared, refused = disclosure_log(store, child)
    assert [(g.agreement_id, g.purpose) for g in shared.grounds] == [("isa-1", "early_help")]
    assert [(g.agreement_id, g.purpose) for g in refused.grounds] == [(None, "early_help")]
    rows = list(csv.DictReader(io.StringIO(disclosure([shared, refused], "csv"))))
    assert [(r["agreement_id"], r["purpose"]) for r in rows] == [
        ("isa-1", "early_help"), ("", "early_help"),
    ]  # fmt: skip


def test_the_report_counts_a_decision_once_under_each_agreement_of_its_grounds(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier, linker: Linker
) -> None:
    """Two agreements: one count under each. Two clauses of one agreement: one count. A
    record without grounds: under its agreement, as before."""
    child = linker.from_nhs_number(CHILD_NHS)
    same = decision("shared", agreement_id="mash", grounds=[
        ground("mash", "c1", "safeguarding", SAFEGUARDING),
        ground("mash", "c2", "safeguarding", SAFEGUARDING),
    ])  # fmt: skip
    records = signed(keys, [
        (AuditKind.DECIDED, "e1", "mash", two_agreements()),
        (AuditKind.DECIDED, "e2", "mash", two_agreements()),
        (AuditKind.DECIDED, "e3", "mash", same),
        (AuditKind.DECIDED, "e4", "mash", decision("shared")),
        (AuditKind.DECIDED, "e5", "mash", decision("shared", agreement_id="mash", grounds=[
            ground("mash", "c1", "safeguarding", SAFEGUARDING)])),
    ], child)  # fmt: skip
    assert index_records(store, verifier, records).breaks == []
    counts = {(d.agreement_id, d.recipient, d.outcome): d.count
              for d in governance_report(store, Window()).decisions}  # fmt: skip
    assert counts == {
        ("early-help", "mash", "shared"): 2,
        ("mash", "mash", "shared"): 4,
        ("isa-1", "mash", "shared"): 1,
    }
    second = Window(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=2))
    assert sorted(store.decision_counts(second), key=str) == [
        ("early-help", "mash", "shared", None, 1), ("mash", "mash", "shared", None, 1),
    ]  # fmt: skip


def test_the_subject_log_as_a_table_or_page_carries_agreement_consent_and_audit_ref(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier, linker: Linker
) -> None:
    child = linker.from_nhs_number(CHILD_NHS)
    records = signed(keys, [(AuditKind.DECIDED, "e9", "coord", decision("shared"))], child)
    assert index_records(store, verifier, records).breaks == []
    [entry] = disclosure_log(store, child)
    # A table's line is a block: each column with a value labelled as the page's heading.
    table = [" ".join(line.split()) for line in disclosure([entry], "table").splitlines()]
    for column, value in (("agreement", "isa-1"), ("consent", "missing"),
                          ("audit ref", "worker:w7#0")):  # fmt: skip
        assert f"{column} {value}" in table
    page = disclosure([entry], "html")
    for cell in ("<th>agreement</th>", "<th>consent</th>", "<th>audit ref</th>",
                 "<td>isa-1</td>", "<td>missing</td>", "<td>worker:w7#0</td>"):  # fmt: skip
        assert cell in page


def test_an_opening_timed_in_the_recipients_local_time_is_shown_in_utc(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier, linker: Linker
) -> None:
    child = linker.from_nhs_number(CHILD_NHS)
    bst = datetime(2026, 7, 1, 10, 0, tzinfo=timezone(timedelta(hours=1)))
    opened = {"by": "coord/a.khan", "purpose": "early_help", "at": bst.isoformat()}
    records = signed(keys, [(AuditKind.DECIDED, "e6", "coord", decision("shared")),
                            (AuditKind.OPENED, "e6", "coord", opened)], child)  # fmt: skip
    assert index_records(store, verifier, records).breaks == []
    [seen] = [e for e in disclosure_log(store, child) if e.kind == "opened"]
    assert seen.at == datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
    assert seen.at.utcoffset() == timedelta(0)
    assert seen.as_dict()["at"] == "2026-07-01T09:00:00+00:00"


def test_the_table_and_page_give_the_basis_in_words_and_csv_and_json_keep_its_codes(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier, linker: Linker
) -> None:
    """The words the desk's record page uses; JSON and CSV are an interface: codes."""
    child = linker.from_nhs_number(CHILD_NHS)
    records = signed(keys, [(AuditKind.DECIDED, "e7", "mash", two_agreements())], child)
    assert index_records(store, verifier, records).breaks == []
    log = disclosure_log(store, child)
    words = ("Art 6: public task, Art 6(1)(e); Art 9: health or social care, Art 9(2)(h), DPA "
             "2018 Sch 1 para 2 | Art 6: public task, Art 6(1)(e); Art 9: safeguarding of "
             "children and of individuals at risk, Art 9(2)(g), DPA 2018 Sch 1 "
             "para 18")  # fmt: skip
    codes = "public_task; Art 9: health_or_social_care | public_task; Art 9: safeguarding_children"
    assert words in " ".join(disclosure(log, "table").split())
    assert f"<td>{words}</td>" in disclosure(log, "html")
    for fmt in ("table", "html"):
        assert "safeguarding_children" not in disclosure(log, fmt)
    assert next(csv.DictReader(io.StringIO(disclosure(log, "csv"))))["lawful_basis"] == codes
    [as_json] = json.loads(disclosure(log, "json"))
    assert as_json["lawful_basis"] == "public_task; Art 9: health_or_social_care"
    assert [g["lawful_basis"] for g in as_json["grounds"]] == codes.split(" | ")
    assert set(as_json["grounds"][0]) == {"agreement_id", "clause_id", "purpose", "lawful_basis"}
