"""A verification's result is kept in the index, pass or fail, so a failure is not forgotten."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from broker.audit import AuditKind, AuditRecord, KeystoreAuditVerifier
from broker.config import KemSuite
from broker.errors import ChainBroken, TransportError
from broker.governance import AuditStore, verify_and_keep
from broker.keys import FileKeyStore
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


def test_accord_audit_verify_keeps_its_result_labelled_as_an_unproved_login_name(
    store: AuditStore, indexed: list[AuditRecord], audit_db_url: str, run_cli: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The command line has no sign-in: LOGNAME is anyone's to set, and the row says so."""
    monkeypatch.setenv("LOGNAME", "ig.jo")
    _tamper(store)
    code, _, _ = run_cli(["audit", "verify", "--db", audit_db_url])
    assert code == 1
    last = store.last_verification()
    assert last is not None
    assert (last.ok, last.via, last.chain, last.seq) == (False, "cli", "worker:w1", 2)
    assert last.by == "ig.jo (terminal, not signed in)"


def test_accord_audit_verify_writes_the_run_and_its_result_to_the_audit_log(
    store: AuditStore, indexed: list[AuditRecord], audit_db_url: str, run_cli: Run,
    verify_records: list[AuditRecord], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """As the console's chains.verify does: the signed record, not the index's row, is
    evidence of who ran it and what it found."""
    monkeypatch.setenv("LOGNAME", "ig.jo")
    assert run_cli(["audit", "verify", "--db", audit_db_url])[0] == 0
    _tamper(store)
    assert run_cli(["audit", "verify", "--db", audit_db_url])[0] == 1
    assert [r.kind for r in verify_records] == [AuditKind.CONSOLE_QUERY] * 2
    named = {"index": _index_name(store, audit_db_url), "index_role": "configured"}
    head = indexed[-1]
    assert [r.data for r in verify_records] == [
        {"officer": "ig.jo (terminal, not signed in)", "page": "cli.verify",
         "detail": {"result": "intact", "records": str(len(indexed)), **named},
         "verified_heads": {"worker:w1": {"seq": head.seq, "hash": head.hash, "partition": 0,
                                          "offset": len(indexed) - 1}}},
        {"officer": "ig.jo (terminal, not signed in)", "page": "cli.verify",
         "detail": {"result": "broken", "chain": "worker:w1", "seq": "2",
                    "problem": "record content does not match its hash", **named}},
    ]  # fmt: skip


def _index_name(store: AuditStore, url: str) -> str:
    """How a verification's record names an index: its file, or its URL without a login."""
    path = getattr(store, "path", None)
    if path is not None:
        return str(Path(path).resolve())
    return re.sub(r"//[^@/]*@", "//", url).partition("?")[0]


def test_verifying_an_index_other_than_the_configured_one_is_recorded_as_a_copy_named(
    store: AuditStore, indexed: list[AuditRecord], audit_db_url: str, run_cli: Run,
    verify_records: list[AuditRecord], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:  # fmt: skip
    """A copy's result lands in the live log (verifying it is an IG action too), saying which
    index it was, so a broken copy is not read as a broken live log; no password in it."""
    from broker.governance import open_store

    open_store(f"sqlite:///{tmp_path / 'live.db'}", home=tmp_path).close()
    monkeypatch.setenv("ACCORD_AUDIT_DB", f"sqlite:///{tmp_path / 'live.db'}")
    _tamper(store)
    assert run_cli(["audit", "verify", "--db", audit_db_url])[0] == 1
    detail = verify_records[0].data["detail"]
    assert (detail["result"], detail["index_role"]) == ("broken", "copy")
    assert detail["index"] == _index_name(store, audit_db_url)
    assert "@" not in detail["index"]


def test_a_copys_verification_continues_the_command_lines_chain_from_the_live_index(
    store: AuditStore, indexed: list[AuditRecord], audit_db_url: str, run_cli: Run,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:  # fmt: skip
    """Its chain head is the live index's: a copy's (older, or with that chain deleted) would
    have the command line fork its own chain in the live log."""
    import broker.cli._audit_verify
    from broker.governance import open_store

    live = tmp_path / "live.db"
    open_store(f"sqlite:///{live}", home=tmp_path).close()
    monkeypatch.setenv("ACCORD_AUDIT_DB", f"sqlite:///{live}")
    heads_from: list[object] = []
    sink = broker.cli._audit_verify.appender_of(None, None, None, None)  # type: ignore[arg-type]  # the autouse fake

    def appender_of(_settings: object, _keys: object, index: AuditStore, _host: object) -> object:
        heads_from.append(getattr(index, "path", None))
        return sink

    monkeypatch.setattr(broker.cli._audit_verify, "appender_of", appender_of)
    assert run_cli(["audit", "verify", "--db", audit_db_url])[0] == 0
    assert heads_from == [live]


def test_verifying_the_configured_index_is_recorded_as_the_configured_one(
    store: AuditStore, indexed: list[AuditRecord], audit_db_url: str, run_cli: Run,
    verify_records: list[AuditRecord], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("ACCORD_AUDIT_DB", audit_db_url)
    assert run_cli(["audit", "verify"])[0] == 0
    assert run_cli(["audit", "verify", "--db", audit_db_url])[0] == 0
    for record in verify_records:
        assert record.data["detail"]["index_role"] == "configured"
        assert record.data["detail"]["index"] == _index_name(store, audit_db_url)


class _Down:
    async def append(self, _build: object) -> list[AuditRecord]:
        raise TransportError("connecting to Kafka at 127.0.0.1:9: connection refused")

    async def close(self) -> None:
        pass


def test_a_verification_the_audit_log_cannot_take_still_answers_and_says_so_in_one_line(
    store: AuditStore, indexed: list[AuditRecord], audit_db_url: str, run_cli: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    import broker.cli._audit_verify

    monkeypatch.setattr(broker.cli._audit_verify, "appender_of", lambda *_a: _Down())
    code, out, err = run_cli(["audit", "verify", "--db", audit_db_url])
    assert code == 0
    assert out.startswith("audit log intact")
    assert err == (
        "accord: warning: this verification is not recorded in the audit log: connecting to "
        "Kafka at 127.0.0.1:9: connection refused\n"
    )


def test_without_the_consoles_signing_key_here_verify_writes_nothing_to_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An indexer's host, with public keys only: nothing to sign a record with."""
    from broker.cli._audit_store import console_keys_here
    from broker.config import load_settings

    home = tmp_path / "indexer-home"
    FileKeyStore(home / "keys", create=True).ensure_party("worker", kem=KemSuite.X25519)
    monkeypatch.setenv("ACCORD_HOME", str(home))
    assert console_keys_here(load_settings()) is None


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
        "Audit log: the index records no verification; run &#x27;accord audit verify&#x27; "
        "before sending"
    )
    assert CHILD_NHS not in out
    verify_and_keep(store, verifier, by="jsmith", via="cli", clock=lambda: T0 + timedelta(1))
    _, out, _ = run_cli(argv)
    assert (
        "<li>Audit log: the index records the last verification as 2026-11-23 08:00:00 UTC by "
        f"jsmith: intact, {len(indexed)} records in 1 chain as indexed then</li>"
    ) in out


def test_a_sar_header_says_entries_logged_after_the_last_verification_are_not_yet_verified(
    store: AuditStore, indexed: list[AuditRecord], verifier: KeystoreAuditVerifier,
    audit_db_url: str, run_cli: Run, lookups: list[dict[str, Any]],
) -> None:  # fmt: skip
    """The worker's records are logged from T0 on: a verification at T0 covers none after."""
    verify_and_keep(store, verifier, by="jsmith", via="cli", clock=lambda: T0)
    argv = ["audit", "subject", "--nhs-number", CHILD_NHS, "--db", audit_db_url, "--reason",
            "subject_access_request", "--as", "ig.jo", "--format", "html"]  # fmt: skip
    _, out, _ = run_cli(argv)
    assert (
        "<li>Audit log: the index records the last verification as 2026-11-22 08:00:00 UTC by "
        f"jsmith: intact, {len(indexed)} records in 1 chain as indexed then; entries after "
        "2026-11-22 08:00:00 UTC not yet verified</li>"
    ) in out
