"""A verification's result is kept in the index, pass or fail, so a failure is not forgotten."""

from __future__ import annotations

from datetime import timedelta

import pytest

from broker.audit import AuditRecord, KeystoreAuditVerifier
from broker.errors import ChainBroken
from broker.governance import AuditStore, verify_and_keep
from tests.unit.audit.conftest import T0, Run


def _tamper(store: AuditStore, *, undo: bool = False) -> None:
    old, new = ("early_hulp", "early_help") if undo else ("early_help", "early_hulp")
    store._q("UPDATE audit_records SET body = REPLACE(body, ?, ?) "  # type: ignore[attr-defined]  # tampering on purpose
             "WHERE chain = 'worker:w1' AND seq = 2", (old, new))  # fmt: skip


def test_a_failed_verification_is_kept_until_a_later_one_passes(
    store: AuditStore, indexed: list[AuditRecord], verifier: KeystoreAuditVerifier
) -> None:
    assert store.last_verification() is None
    _tamper(store)
    with pytest.raises(ChainBroken):
        verify_and_keep(store, verifier, by="ig.jo", via="console", at=T0)
    last = store.last_verification()
    assert last is not None
    assert (last.ok, last.by, last.via, last.at) == (False, "ig.jo", "console", T0)
    assert (last.chain, last.seq, last.problem) == (
        "worker:w1",
        2,
        "record content does not match its hash",
    )
    assert last.failure == (
        "audit chain 'worker:w1' broken at seq 2: record content does not match its hash"
    )
    _tamper(store, undo=True)
    later = T0 + timedelta(minutes=5)
    summary = verify_and_keep(store, verifier, by="jsmith", via="cli", at=later)
    last = store.last_verification()
    assert last is not None
    assert (last.ok, last.by, last.via, last.records, last.chains, last.chain) == (
        True, "jsmith", "cli", summary.records, summary.chains, None
    )  # fmt: skip


def test_accord_audit_verify_keeps_its_result_in_the_index(
    store: AuditStore, indexed: list[AuditRecord], audit_db_url: str, run_cli: Run
) -> None:
    _tamper(store)
    code, _, _ = run_cli(["audit", "verify", "--db", audit_db_url])
    assert code == 1
    last = store.last_verification()
    assert last is not None
    assert (last.ok, last.via, last.chain, last.seq) == (False, "cli", "worker:w1", 2)
    assert last.by  # the login name at the terminal
