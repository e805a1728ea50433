"""Runs of ``accord policy impact`` in ``accord audit report`` (IG lead's walk-through 3).

Each run writes a signed ``policy_impact`` record naming who ran it, the two bundle versions
and its counts; the officer could find them only with SQL. The report lists them now, read
through the governance index, and none of it names a child.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
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
from broker.governance import AuditStore, Window, governance_report, policy_impact_runs
from broker.keys import FileKeyStore
from broker.pipeline import Impact, ImpactRow
from broker.pipeline._impact_compare import ConsentRow
from broker.principals import Principal
from tests.unit.audit.conftest import CHILD_NHS, T0, Run, index_records

IN_FORCE = "sha256:" + "a" * 64
PROPOSED = "sha256:" + "b" * 64
BY = "jo.bloggs (terminal, not signed in)"


def impact_chain(
    keys: FileKeyStore, impact: Impact, *, at: datetime, run: str, by: str = BY
) -> list[AuditRecord]:
    """A run's record and checkpoint as ``record_impact`` writes them: its own worker chain,
    the result's JSON with who ran it as ``officer``."""
    w = ChainWriter(Principal.WORKER.chain(f"impact-{run}"), clock=lambda: at)
    data = impact.as_json()
    data["officer"] = by
    return [
        w.append(AuditKind.POLICY_IMPACT, data=data),
        w.checkpoint(KeystoreAuditSigner(keys, Principal.WORKER)),
    ]


def changed_impact() -> Impact:
    return Impact(
        IN_FORCE, PROPOSED, events=40, decisions=55, unchanged=48, read=42, compared=40,
        rows=[ImpactRow("stops", "isa-1", "coord", "consent-missing", 4),
              ImpactRow("starts", "isa-2", "school-1", "not-a-candidate", 2),
              ImpactRow("stops", "isa-1", "hub-a", "agreement-inactive", 1)],
        consents=[ConsentRow("stops", "sandwell-coord", "withdrawn", "outside-authority", 3),
                  ConsentRow("stops", "sandwell-coord", "given", "outside-authority", 5)],
    )  # fmt: skip


@pytest.fixture
def runs(store: AuditStore, verifier: KeystoreAuditVerifier, keys: FileKeyStore) -> None:
    first = impact_chain(keys, changed_impact(), at=T0 + timedelta(hours=1), run="000000000001")
    empty = impact_chain(keys, Impact(IN_FORCE, PROPOSED), at=T0 + timedelta(hours=2),
                         run="000000000002", by="ig.sam (terminal, not signed in)")  # fmt: skip
    assert index_records(store, verifier, first + empty, start=700).breaks == []


def test_the_report_lists_each_run_newest_first_with_who_versions_and_counts(
    store: AuditStore, runs: None
) -> None:
    rep = governance_report(store, Window())
    assert [(r.by, r.chain) for r in rep.impacts] == [
        ("ig.sam (terminal, not signed in)", "worker:impact-000000000002"),
        (BY, "worker:impact-000000000001"),
    ]
    empty, changed = rep.impacts
    assert (changed.current_version, changed.new_version) == (IN_FORCE, PROPOSED)
    assert changed.at == T0 + timedelta(hours=1)
    assert (changed.events_read, changed.events, changed.decisions, changed.unchanged) == (
        42, 40, 55, 48,
    )  # fmt: skip
    assert (changed.changed, changed.stops, changed.starts) == (7, 5, 2)
    assert (changed.consent_records_changed, changed.reopening) == (8, 3)
    assert not changed.nothing_compared
    # A run that compared nothing says so, never "nothing changed".
    assert empty.nothing_compared
    assert (empty.decisions, empty.changed) == (0, 0)


def test_the_window_bounds_the_runs(store: AuditStore, runs: None) -> None:
    later = Window(since=T0 + timedelta(hours=1, minutes=30))
    assert [r.chain for r in policy_impact_runs(store, later)] == ["worker:impact-000000000002"]
    assert governance_report(store, Window(until=T0 + timedelta(hours=1))).impacts == ()


def test_json_and_table_show_who_ran_each_the_two_versions_and_the_counts(
    store: AuditStore, runs: None
) -> None:
    rep = governance_report(store, Window())
    data = json.loads(report_json(rep))["policy_impacts"]
    assert [(r["by"], r["current_version"], r["new_version"]) for r in data] == [
        ("ig.sam (terminal, not signed in)", IN_FORCE, PROPOSED),
        (BY, IN_FORCE, PROPOSED),
    ]
    assert data[1] | {"at": None} == {
        "at": None, "by": BY, "chain": "worker:impact-000000000001",
        "current_version": IN_FORCE, "new_version": PROPOSED, "since": None,
        "events_read": 42, "events": 40, "decisions": 55, "unchanged": 48, "changed": 7,
        "nothing_compared": False, "stops": 5, "starts": 2, "consent_records_changed": 8,
        "reopening": 3, "unversioned_agreements": 0, "new_senders_not_read": [],
    }  # fmt: skip
    assert data[0]["nothing_compared"] is True
    text = report_text(rep)
    section = text[text.index("Policy impact runs") : text.index("Deliveries and openings")]
    assert section.startswith("Policy impact runs (accord policy impact): 2\n")
    # The versions as the command printed them.
    assert f"{IN_FORCE[:19]} -> {PROPOSED[:19]}" in section
    [row] = [line for line in section.splitlines() if line.startswith(T0.date().isoformat())
             and BY in line]  # fmt: skip
    # Each run's own counts, the withdrawals or refusals that would stop counting among them:
    # runs of one proposal (or of rejected ones) are not added up.
    assert row.split()[-8:] == ["40", "55", "7", "5", "2", "8", "3", "0"]
    assert "nothing compared" in section
    assert "reopening: withdrawals or refusals on file that the proposed bundle would" in section


def test_runs_are_not_added_up(
    store: AuditStore, verifier: KeystoreAuditVerifier, keys: FileKeyStore
) -> None:
    """Three runs of one proposal, 3 reopening each: the report says 3 for each, never 9."""
    records = [rec for i in range(3)
               for rec in impact_chain(keys, changed_impact(), at=T0 + timedelta(hours=i + 1),
                                       run=f"00000000000{i}")]  # fmt: skip
    assert index_records(store, verifier, records, start=900).breaks == []
    text = report_text(governance_report(store, Window()))
    section = text[text.index("Policy impact runs") : text.index("Deliveries and openings")]
    rows = [line.split() for line in section.splitlines() if BY in line]
    assert [r[-2] for r in rows] == ["3", "3", "3"]
    assert "9" not in "".join(line for line in section.splitlines() if BY not in line)


def test_a_run_that_could_not_read_a_new_sender_says_so_in_the_report(
    store: AuditStore, verifier: KeystoreAuditVerifier, keys: FileKeyStore
) -> None:
    """Its "starts" leave the new sender's events out: the record, the JSON and the table
    say which sender was not read."""
    impact = changed_impact()
    impact.new_senders_not_read = ("wm-housing-assoc",)
    records = impact_chain(keys, impact, at=T0 + timedelta(hours=1), run="000000000009")
    assert records[0].data["new_senders_not_read"] == ["wm-housing-assoc"]
    assert index_records(store, verifier, records, start=950).breaks == []
    rep = governance_report(store, Window())
    [run] = json.loads(report_json(rep))["policy_impacts"]
    assert run["new_senders_not_read"] == ["wm-housing-assoc"]
    assert "did not read new sender(s) wm-housing-assoc (no topic yet)" in report_text(rep)


def test_no_run_is_said_so(store: AuditStore) -> None:
    rep = governance_report(store, Window())
    assert json.loads(report_json(rep))["policy_impacts"] == []
    assert "Policy impact runs (accord policy impact): 0\n(none)" in report_text(rep)


def test_accord_audit_report_lists_the_runs_and_names_no_child_for_them(
    store: AuditStore, runs: None, audit_db_url: str, run_cli: Run,
    lookups: list[dict[str, Any]],
) -> None:  # fmt: skip
    code, out, err = run_cli(["audit", "report", "--db", audit_db_url, "--format", "json",
                              "--reason", "oversight", "--as", "ig.jo"])  # fmt: skip
    assert (code, err) == (0, "")
    assert [r["by"] for r in json.loads(out)["policy_impacts"]] == [
        "ig.sam (terminal, not signed in)", BY,
    ]  # fmt: skip
    # A run's record carries no child, so its listing adds none to the look-up's record.
    [lookup] = lookups
    assert lookup["subject_keys"] == ()
    for rec in store.policy_impacts(Window()):
        assert rec.subject_keys == ()
        assert CHILD_NHS not in rec.model_dump_json()
