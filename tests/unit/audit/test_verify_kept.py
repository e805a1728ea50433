"""A verification's result is kept in the index, pass or fail, so a failure is not forgotten."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from broker.audit import AuditRecord, KeystoreAuditVerifier
from broker.errors import ChainBroken
from broker.governance import AuditStore, verify_and_keep
from broker.linkage import Linker
from tests.unit.audit.conftest import CHILD_NHS, T0, Run


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
        verify_and_keep(store, verifier, by="ig.jo", via="console", clock=lambda: T0)
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
    summary = verify_and_keep(store, verifier, by="jsmith", via="cli", clock=lambda: later)
    last = store.last_verification()
    assert last is not None
    assert (last.ok, last.by, last.via, last.records, last.chains, last.chain) == (
        True, "jsmith", "cli", summary.records, summary.chains, None
    )  # fmt: skip


def test_a_pass_over_an_older_snapshot_kept_last_does_not_clear_a_newer_failure(
    store: AuditStore, indexed: list[AuditRecord], verifier: KeystoreAuditVerifier
) -> None:
    """The last verification is the one whose snapshot is newest, not the last one kept."""
    later = T0 + timedelta(minutes=5)
    _tamper(store)
    with pytest.raises(ChainBroken):
        verify_and_keep(store, verifier, by="ig.jo", via="console", clock=lambda: later)
    _tamper(store, undo=True)
    # A slow run that opened its snapshot at T0 (before the failing one) finishes last.
    verify_and_keep(store, verifier, by="jsmith", via="cli", clock=lambda: T0)
    last = store.last_verification()
    assert last is not None
    assert (last.ok, last.by, last.at) == (False, "ig.jo", later)
    # A pass over a newer snapshot than the failure's clears it.
    verify_and_keep(store, verifier, by="jsmith", via="cli", clock=lambda: later + timedelta(1))
    last = store.last_verification()
    assert last is not None
    assert (last.ok, last.by) == (True, "jsmith")


def test_a_runs_time_is_read_once_its_snapshot_is_open(
    store: AuditStore, indexed: list[AuditRecord], verifier: KeystoreAuditVerifier,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    events: list[str] = []
    opened = store.snapshot

    @contextlib.contextmanager
    def snapshot() -> Iterator[None]:
        with opened():
            events.append("snapshot opened")
            yield
        events.append("snapshot closed")

    def clock() -> datetime:
        events.append("clock read")
        return T0

    monkeypatch.setattr(store, "snapshot", snapshot)
    verify_and_keep(store, verifier, by="jsmith", via="cli", clock=clock)
    assert events == ["snapshot opened", "clock read", "snapshot closed"]


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


def test_a_sar_attachment_says_when_by_whom_what_was_searched_and_the_logs_state(
    store: AuditStore, indexed: list[AuditRecord], verifier: KeystoreAuditVerifier,
    audit_db_url: str, run_cli: Run, lookups: list[dict[str, Any]], linker: Linker,
) -> None:  # fmt: skip
    argv = ["audit", "subject", "--nhs-number", CHILD_NHS, "--db", audit_db_url, "--reason",
            "subject_access_request", "--as", "ig.jo", "--format", "html"]  # fmt: skip
    _, out, _ = run_cli(argv)
    head = re.search(r'<ul id="produced">(.*?)</ul>', out)
    assert head, out[:500]
    lines = re.findall(r"<li>(.*?)</li>", head.group(1))
    assert re.fullmatch(
        r"Produced \d{4}-\d\d-\d\d \d\d:\d\d UTC by ig\.jo, for subject access request", lines[0]
    )
    key = linker.from_nhs_number(CHILD_NHS)
    assert lines[1] == f"Searched by NHS number; subject keys {key}"
    assert lines[2] == (
        "Audit log: no verification recorded; run &#x27;accord audit verify&#x27; before sending"
    )
    assert CHILD_NHS not in out
    verify_and_keep(store, verifier, by="jsmith", via="cli", clock=lambda: T0)
    _, out, _ = run_cli(argv)
    assert (
        f"<li>Audit log: last verified 2026-11-22 08:00 UTC by jsmith: intact, {len(indexed)} "
        "records in 1 chains</li>"
    ) in out
