"""An override made under several agreements rests on each: the report lists every one."""

from __future__ import annotations

import json
from datetime import timedelta

from broker.audit import KeystoreAuditVerifier as Verifier
from broker.cli._audit_report import report_json, report_text
from broker.governance import AuditStore, Window, governance_report, pending_overrides
from broker.keys import FileKeyStore
from broker.linkage import Linker
from tests.unit.audit.conftest import CHILD_NHS, T0, index_records
from tests.unit.audit.test_disclosure_grounds import overrides_under_two_and_one_agreements


def test_an_override_under_two_agreements_is_reported_under_both(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier, linker: Linker
) -> None:
    child = linker.from_nhs_number(CHILD_NHS)
    records = overrides_under_two_and_one_agreements(keys, child, T0 + timedelta(minutes=1))
    assert index_records(store, verifier, records).breaks == []
    both, one = pending_overrides(store)
    assert [g.agreement_id for g in both.agreements] == ["early-help", "mash"]
    assert both.subject_keys == (child,)
    assert [g.agreement_id for g in one.agreements] == ["isa-1"]
    rep = governance_report(store, Window())
    text = report_text(rep)
    assert "early-help | mash" in text
    listed = json.loads(report_json(rep))["pending_overrides"]
    assert [[a["agreement_id"] for a in p["agreements"]] for p in listed] == [
        ["early-help", "mash"], ["isa-1"],
    ]  # fmt: skip
    assert [p["agreement_id"] for p in listed] == ["early-help", "isa-1"]  # the first, as before


def test_the_report_gives_the_decisions_made_under_a_table_that_counts_some_twice(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier, linker: Linker
) -> None:
    """Two decisions, one under two agreements: the table counts three, the note says two."""
    child = linker.from_nhs_number(CHILD_NHS)
    records = overrides_under_two_and_one_agreements(keys, child, T0 + timedelta(minutes=1))
    assert index_records(store, verifier, records).breaks == []
    rep = governance_report(store, Window())
    assert sum(d.count for d in rep.decisions) == 3
    table = report_text(rep).split("\n\n")[1].splitlines()  # after the title
    assert table[-1] == (
        "Decisions made: 2. A decision made under several agreements is counted under each"
        " of them above, so the counts add up to 3."
    )
    assert json.loads(report_json(rep))["decisions_total"] == 2
