"""``accord audit subject --format table`` fits the width it is printed in (a grid of every
column was ~400 characters a line), and every line of the log keeps its facts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from broker.audit import AuditKind, AuditRecord, ChainWriter, KeystoreAuditSigner
from broker.audit import KeystoreAuditVerifier as Verifier
from broker.cli._audit_render import disclosure, output_width
from broker.governance import AuditStore, disclosure_log
from broker.governance._sent import field_sent_as
from broker.keys import FileKeyStore
from broker.linkage import Linker
from broker.principals import Principal
from tests.unit.audit.conftest import CHILD_NHS, T0, Run, decision, index_records

SAFEGUARDING = {"article6": "public_task", "article9": "safeguarding_children",
                "article10": "safeguarding_children"}  # fmt: skip
EARLY_HELP = {"article6": "public_task", "article9": "health_or_social_care"}


def _ground(agreement: str, purpose: str, basis: dict[str, str]) -> dict[str, Any]:
    return {"agreement_id": agreement, "agreement_version": "1", "clause_id": f"{agreement}-c",
            "purpose": purpose, "lawful_basis": basis, "consent": "not_required"}  # fmt: skip


def _blocks(table: str) -> list[str]:
    """The table's lines of the log, each as one string with its wrapping undone (the earlier
    look-ups, listed under them, are not lines of the log)."""
    log = table.partition("\n\nEarlier look-ups of this log")[0]
    return [" ".join(b.split()) for b in log.split("\n\n")[1:]]


@pytest.fixture
def long_lines(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier, linker: Linker
) -> list[AuditRecord]:
    """A share under two agreements, on long bases, of many fields: a wide line of the log."""
    fields = [f"subject.{f}" for f in ("name", "dob", "nhs_number", "address", "postcode")]
    share = decision(
        "shared_override", agreement_id="sandwell-early-help", purpose="early_help",
        lawful_basis=EARLY_HELP, clause_ids=["police-to-cog", "police-to-mash-safeguarding"],
        fields_shared=[*fields, "event.summary", "event.child_voice", "event.location"],
        override_grounds="safeguarding_concern", review_required=True,
        grounds=[_ground("sandwell-early-help", "early_help", EARLY_HELP),
                 _ground("wolverhampton-mash", "safeguarding", SAFEGUARDING)],
    )  # fmt: skip
    w = ChainWriter("worker:w9", clock=lambda: T0)
    child = linker.from_nhs_number(CHILD_NHS)
    records = [
        w.append(AuditKind.DECIDED, event_id="3a1e5b70-6c2d-4f1a-9e0b-5a0000000001",
                 party="wolverhampton-mash", subject_keys=[child], data=share),
        w.checkpoint(KeystoreAuditSigner(keys, Principal.WORKER)),
    ]  # fmt: skip
    assert index_records(store, verifier, records).breaks == []
    return records


@pytest.mark.usefixtures("indexed", "long_lines", "lookups")
@pytest.mark.parametrize("columns", [100, 60])
def test_the_subject_table_fits_columns_and_each_line_keeps_its_facts(
    columns: int, audit_db_url: str, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["audit", "subject", "--nhs-number", CHILD_NHS, "--db", audit_db_url,
            "--reason", "subject_access_request", "--as", "ig.jo", "--format"]  # fmt: skip
    code, out, err = run_cli([*argv, "json"])
    assert code == 0, err
    entries = json.loads(out)
    monkeypatch.setenv("COLUMNS", str(columns))
    code, table, err = run_cli([*argv, "table"])
    assert code == 0, err
    assert max(len(line) for line in table.splitlines()) <= columns
    blocks = _blocks(table)
    assert len(blocks) == len(entries) > 5
    for entry, block in zip(entries, blocks, strict=True):
        assert block.startswith(f"{entry['at']} {entry['kind']}"), block
        assert f"audit ref {entry['audit_ref']}" in block
        assert f"event {entry['event_id']}" in block
        for key in ("recipient", "outcome", "sender", "reason"):
            assert entry[key] is None or entry[key] in block, key
        # Each field in words, as sent (a wrapped line breaks between words).
        words = " ".join(block.split())
        for field in entry["fields_shared"]:
            assert field_sent_as(field, entry["transforms"].get(field)) in words, field


def test_a_long_line_wraps_to_the_width_with_nothing_lost(
    store: AuditStore, long_lines: list[AuditRecord], linker: Linker
) -> None:
    entries = disclosure_log(store, linker.from_nhs_number(CHILD_NHS))
    table = disclosure(entries, "table", width=80)
    assert max(len(line) for line in table.splitlines()) <= 80
    [block] = _blocks(table)
    assert (
        "lawful basis Art 6: public task, Art 6(1)(e); Art 9: health or social care, "
        "Art 9(2)(h), DPA 2018 Sch 1 para 2 | Art 6: public task, Art 6(1)(e); Art 9: "
        "safeguarding of children and of individuals at risk, Art 9(2)(g), DPA 2018 Sch 1 "
        "para 18; Art 10: safeguarding of children and of individuals at risk, DPA 2018 Sch 1 "
        "para 18 as para 36 extends it"
    ) in block
    assert "agreement sandwell-early-help | wolverhampton-mash" in block
    assert "event 3a1e5b70-6c2d-4f1a-9e0b-5a0000000001" in block


def test_printed_to_a_file_the_width_is_columns_else_100(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under pytest's capture stdout is no terminal, as when a SAR's table goes to a file."""
    monkeypatch.delenv("COLUMNS", raising=False)
    assert output_width() == 100
    monkeypatch.setenv("COLUMNS", "132")
    assert output_width() == 132
    # Not set: what shutil reads as unset (0 or less), and digits no shell writes.
    for columns in ("wide", "0", "-5", "\u0663\u0660", ""):
        monkeypatch.setenv("COLUMNS", columns)
        assert output_width() == 100, columns
