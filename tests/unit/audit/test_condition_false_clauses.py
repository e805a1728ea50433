"""A ``condition-false`` line names the condition its clauses did not meet (IG review).

The reason's meaning says only "applies only in certain circumstances ... these were not met";
the officer needs which. The decision names its clauses and the policy version it was made
under: the console and the command line's table read each clause's ``when`` from the bundle
they loaded when it is that version, and say where to read it when it is not.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from broker.audit import AuditKind, AuditRecord, ChainWriter, KeystoreAuditSigner
from broker.audit import KeystoreAuditVerifier as Verifier
from broker.governance import AuditStore, answer_notes, disclosure_log
from broker.keys import FileKeyStore
from broker.linkage import Linker
from broker.policy import Policy, load_bundle
from broker.principals import Principal
from tests.unit.audit.conftest import CHILD_NHS, T0, Run, decision, index_records

POLICIES = Path(__file__).parents[3] / "policies"
WHEN = "when event.need_level >= 2 && event.subjects.exists(s, s.postcode_district in"
NAMED = "Condition not met (condition-false), sandwell-early-help / police-to-coord"


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_bundle(POLICIES)


def refused_chain(linker: Linker, keys: FileKeyStore, version: str) -> list[AuditRecord]:
    """wmp's event about the child, not shared with sandwell-coord: police-to-coord's
    condition was false (the decision names it, and the bundle's version it was made under)."""
    w = ChainWriter("worker:w8", clock=lambda: T0 + timedelta(hours=4))
    ground = {"agreement_id": "sandwell-early-help", "clause_id": "police-to-coord",
              "purpose": "safeguarding", "lawful_basis": {"article6": "public_task"}}  # fmt: skip
    data = decision("not_shared", reason="condition-false", clause_ids=["police-to-coord"],
                    agreement_id="sandwell-early-help", grounds=[ground],
                    policy_version=version)  # fmt: skip
    rec = w.append(AuditKind.DECIDED, event_id="e-cond", party="sandwell-coord",
                   subject_keys=[linker.from_nhs_number(CHILD_NHS)], data=data)  # fmt: skip
    return [rec, w.checkpoint(KeystoreAuditSigner(keys, Principal.WORKER))]


def filed(store: AuditStore, verifier: Verifier, records: list[AuditRecord]) -> None:
    assert index_records(store, verifier, records, start=800).breaks == []


def test_the_notes_name_the_condition_from_the_bundle_of_the_decisions_version(
    store: AuditStore, verifier: Verifier, linker: Linker, keys: FileKeyStore, policy: Policy
) -> None:
    filed(store, verifier, refused_chain(linker, keys, policy.version))
    entries = disclosure_log(store, linker.from_nhs_number(CHILD_NHS))
    [note] = [n for n in answer_notes(entries, conditions=True, policy=policy) if NAMED in n]
    assert WHEN in note
    # Only where asked for (the officer's views), never on the family's page's notes.
    assert not any(NAMED in n for n in answer_notes(entries))


def test_another_bundle_version_or_none_says_where_to_read_the_condition(
    store: AuditStore, verifier: Verifier, linker: Linker, keys: FileKeyStore, policy: Policy
) -> None:
    filed(store, verifier, refused_chain(linker, keys, "sha256:older"))
    entries = disclosure_log(store, linker.from_nhs_number(CHILD_NHS))
    [other] = [n for n in answer_notes(entries, conditions=True, policy=policy) if NAMED in n]
    assert "bundle version differs: decided under policy version sha256:older" in other
    assert f"the bundle loaded here is version {policy.version}" in other
    assert "read the clause's 'when' in the bundle of policy version sha256:older" in other
    assert "when " not in other
    [none] = [n for n in answer_notes(entries, conditions=True, policy=None) if NAMED in n]
    assert "no policy bundle is loaded here" in none


def test_accord_audit_subject_names_the_condition_in_its_table_only(
    store: AuditStore, verifier: Verifier, linker: Linker, keys: FileKeyStore, policy: Policy,
    audit_db_url: str, run_cli: Run, lookups: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    filed(store, verifier, refused_chain(linker, keys, policy.version))
    monkeypatch.setenv("ACCORD_POLICIES", str(POLICIES))
    said = {}
    for fmt in ("table", "html", "json", "csv"):
        code, out, err = run_cli(
            ["audit", "subject", "--nhs-number", CHILD_NHS, "--db", audit_db_url, "--format",
             fmt, "--reason", "subject_access_request", "--as", "ig.jo"]
        )  # fmt: skip
        assert code == 0, err
        said[fmt] = " ".join(out.split())
    assert NAMED in said["table"]
    assert WHEN in said["table"]
    assert not any(NAMED in said[f] for f in ("html", "json", "csv"))


def test_a_bundle_nested_past_the_parser_leaves_the_sar_without_notes_not_broken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """load_bundle raises RecursionError on a file nested past the parser: not an
    AccordError, so the best-effort loader let it end the SAR with a traceback (r45e)."""
    from broker.cli._audit_store import policy_at_hand
    from broker.config import load_settings

    bundle = tmp_path / "policies"
    bundle.mkdir()
    (bundle / "parties.yaml").write_text("[" * 100_000)
    monkeypatch.setenv("ACCORD_POLICIES", str(bundle))
    assert policy_at_hand(load_settings()) is None
