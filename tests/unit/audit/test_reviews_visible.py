"""An override's review is visible wherever the override is: the report's reviewed section,
and the review status on its line of the child's disclosure log (every format)."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from broker.audit import AuditRecord, ChainWriter, KeystoreAuditSigner, KeystoreAuditVerifier
from broker.governance import AuditStore, ReviewFinding, Window, disclosure_log, governance_report
from broker.governance._review import check_reviewable, review_record
from broker.keys import FileKeyStore
from broker.linkage import Linker
from broker.principals import Principal
from tests.unit.audit.conftest import CHILD_NHS, T0, Run, index_records

REVIEWED_AT = T0 + timedelta(days=1)
POLICIES = Path(__file__).parents[3] / "policies"


def _review(store: AuditStore, keys: FileKeyStore, verifier: KeystoreAuditVerifier) -> None:
    """ig-jo finds e2's override to school-1 not justified, reference IG-2026-114."""
    decision = check_reviewable(store, "e2", "school-1")
    writer = ChainWriter("console:test", clock=lambda: REVIEWED_AT)
    records = [
        review_record(writer, decision, reviewed_by="ig-jo", finding=ReviewFinding.NOT_JUSTIFIED,
                      reference="IG-2026-114"),
    ]  # fmt: skip
    records.append(writer.checkpoint(KeystoreAuditSigner(keys, Principal.CONSOLE)))
    assert index_records(store, verifier, records, start=100).breaks == []


def _override_line(store: AuditStore, linker: Linker) -> Any:
    entries = disclosure_log(store, linker.from_nhs_number(CHILD_NHS))
    [line] = [e for e in entries if e.outcome == "shared_override"]
    assert all(e.review is None for e in entries if e is not line)
    return line


def test_an_overrides_line_says_it_awaits_review_then_gives_the_finding(
    store: AuditStore, indexed: list[AuditRecord], keys: FileKeyStore,
    verifier: KeystoreAuditVerifier, linker: Linker,
) -> None:  # fmt: skip
    assert _override_line(store, linker).as_dict()["review"] == {"state": "awaiting_review"}
    _review(store, keys, verifier)
    line = _override_line(store, linker)
    assert line.as_dict()["review"] == {
        "state": "reviewed", "finding": "not_justified", "reviewed_by": "ig-jo",
        "reference": "IG-2026-114", "reviewed_at": REVIEWED_AT.isoformat(),
    }  # fmt: skip
    assert line.review.text() == (
        f"not justified by ig-jo at {REVIEWED_AT.isoformat()}, ref IG-2026-114"
    )


def test_the_report_lists_the_overrides_reviewed_in_its_window(
    store: AuditStore, indexed: list[AuditRecord], keys: FileKeyStore,
    verifier: KeystoreAuditVerifier, linker: Linker,
) -> None:  # fmt: skip
    _review(store, keys, verifier)
    [reviewed] = governance_report(store, Window()).reviewed
    assert (reviewed.event_id, reviewed.recipient, reviewed.sender) == ("e2", "school-1", "wmp")
    assert (reviewed.status.finding, reviewed.status.reviewed_by, reviewed.status.reference) == (
        "not_justified", "ig-jo", "IG-2026-114"
    )  # fmt: skip
    assert reviewed.subject_keys == (linker.from_nhs_number(CHILD_NHS),)
    before = Window(until=REVIEWED_AT)
    assert governance_report(store, before).reviewed == ()


def test_accord_audit_report_prints_the_reviewed_section_and_records_its_child(
    store: AuditStore, indexed: list[AuditRecord], keys: FileKeyStore,
    verifier: KeystoreAuditVerifier, linker: Linker, audit_db_url: str, run_cli: Run,
    lookups: list[dict[str, Any]],
) -> None:  # fmt: skip
    _review(store, keys, verifier)
    base = ["audit", "report", "--db", audit_db_url, "--reason", "oversight", "--as", "ig.jo"]
    code, out, _ = run_cli(base)
    assert code == 0
    assert "Safeguarding overrides reviewed in the period: 1" in out
    [row] = [line for line in out.splitlines() if line.startswith(REVIEWED_AT.isoformat())]
    assert row.split() == [REVIEWED_AT.isoformat(), "e2", "school-1", "not", "justified",
                           "ig-jo", "IG-2026-114"]  # fmt: skip
    code, out, _ = run_cli([*base, "--format", "json"])
    [reviewed] = json.loads(out)["reviewed_overrides"]
    assert (reviewed["event_id"], reviewed["finding"], reviewed["reviewed_by"],
            reviewed["reference"]) == ("e2", "not_justified", "ig-jo", "IG-2026-114")  # fmt: skip
    # No override awaits review now: the record names the child for the reviewed one.
    assert lookups[-1]["subject_keys"] == (linker.from_nhs_number(CHILD_NHS),)


def test_every_disclosure_format_carries_the_review(
    store: AuditStore, indexed: list[AuditRecord], keys: FileKeyStore,
    verifier: KeystoreAuditVerifier, audit_db_url: str, run_cli: Run,
    lookups: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    _review(store, keys, verifier)
    # The table wraps to COLUMNS (xdist's workers run with 80, where this line wraps, as it
    # should on a terminal that narrow): the check is that the review is there, whole.
    monkeypatch.setenv("COLUMNS", "120")
    text = f"not justified by ig-jo at {REVIEWED_AT.isoformat()}, ref IG-2026-114"
    base = ["audit", "subject", "--nhs-number", CHILD_NHS, "--db", audit_db_url,
            "--reason", "subject_access_request", "--as", "ig.jo", "--format"]  # fmt: skip
    _, out, _ = run_cli([*base, "json"])
    [line] = [e for e in json.loads(out) if e["outcome"] == "shared_override"]
    assert line["review"]["finding"] == "not_justified"
    _, out, _ = run_cli([*base, "csv"])
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["review"] for r in rows if r["outcome"] == "shared_override"] == [text]
    assert {r["review"] for r in rows if r["outcome"] != "shared_override"} == {""}
    _, out, _ = run_cli([*base, "html"])
    assert f"<td>{text}</td>" in out
    _, out, _ = run_cli([*base, "table"])
    assert text in out


def test_accord_audit_report_finds_the_bundle_as_other_commands_do(
    indexed: list[AuditRecord], audit_db_url: str, run_cli: Run, lookups: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:  # fmt: skip
    """--policies, else ACCORD_POLICIES, else policies/ in the folder it runs in."""
    argv = ["audit", "report", "--db", audit_db_url, "--reason", "oversight", "--as", "ig.jo",
            "--format", "json"]  # fmt: skip
    monkeypatch.chdir(tmp_path)  # no policies/ here
    monkeypatch.delenv("ACCORD_POLICIES", raising=False)
    _, out, _ = run_cli(argv)
    assert json.loads(out)["expiring_agreements"] is None
    _, out, _ = run_cli(argv[:-2])
    assert "(not checked: no policy bundle; give --policies DIR or set ACCORD_POLICIES)" in out
    monkeypatch.setenv("ACCORD_POLICIES", str(POLICIES))
    _, out, _ = run_cli(argv)
    assert json.loads(out)["expiring_agreements"] is not None
    monkeypatch.delenv("ACCORD_POLICIES")
    (tmp_path / "policies").symlink_to(POLICIES)
    _, out, _ = run_cli(argv)
    assert json.loads(out)["expiring_agreements"] is not None
