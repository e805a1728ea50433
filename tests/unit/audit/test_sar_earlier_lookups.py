"""`accord audit subject` lists the child's earlier look-ups, as the console's page does.

Who looked the child up, when, from where and why, under the log in a table and after the
log's lines in JSON; the run's own look-up, written before anything is shown, is not among
them (the console leaves its own out too). The look-ups are written and indexed as the
command writes them, with Kafka and the password faked (tests/e2e has them real).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from broker.audit import (
    AuditRecord,
    ChainWriter,
    KeystoreAuditSigner,
    KeystoreAuditVerifier,
)
from broker.governance import AuditStore, record_query
from broker.keys import FileKeyStore
from broker.linkage import Linker
from broker.principals import Principal
from tests.unit.audit.conftest import CHILD_NHS, OTHER_CHILD_NHS, T0, Run, index_records

HEADING = "Earlier look-ups of this log"


class SignedSink:
    """One console chain as the command line's appender writes it: each append's records and
    a signed checkpoint, kept until ``index`` files them (the indexer, minus Kafka)."""

    def __init__(
        self, chain: str, keys: FileKeyStore, verifier: KeystoreAuditVerifier, *, seconds: int = 0
    ) -> None:
        tick = iter(range(10_000))
        # A day after the worker's records (and ``seconds``), a minute apart.
        start = T0 + timedelta(days=1, seconds=seconds)
        self.writer = ChainWriter(chain, clock=lambda: start + timedelta(minutes=next(tick)))
        self.signer = KeystoreAuditSigner(keys, Principal.CONSOLE)
        self.verifier = verifier
        self.pending: list[AuditRecord] = []
        self.offset = 0

    async def append(self, build: Callable[[ChainWriter], list[AuditRecord]]) -> list[AuditRecord]:
        records = build(self.writer)
        self.pending += [*records, self.writer.checkpoint(self.signer)]
        return records

    async def close(self) -> None:
        pass

    def index(self, store: AuditStore) -> None:
        summary = index_records(store, self.verifier, self.pending, start=self.offset)
        assert summary.breaks == []
        self.offset += len(self.pending)
        self.pending = []


@pytest.fixture
def cli_chain(
    indexed: list[AuditRecord], keys: FileKeyStore, verifier: KeystoreAuditVerifier,
    monkeypatch: pytest.MonkeyPatch,
) -> SignedSink:  # fmt: skip
    """The command line's chain: `accord audit subject` writes its look-up there and indexes
    it into the store it opened, through its own ``_record_lookup``."""
    import broker.cli._audit

    sink = SignedSink("console:test.cli", keys, verifier)
    monkeypatch.setenv("COLUMNS", "100")  # the width a line wraps at, whatever runs this
    monkeypatch.setattr(broker.cli._audit, "sign_in", lambda _s, name, **_kw: name)
    monkeypatch.setattr(broker.cli._audit, "_appender", lambda *_a: sink)
    monkeypatch.setattr(broker.cli._audit, "_index_once", lambda _s, store: sink.index(store))
    return sink


def on_the_console(
    store: AuditStore, keys: FileKeyStore, verifier: KeystoreAuditVerifier, *,
    officer: str, page: str, subject_keys: tuple[str, ...], purpose: str,
) -> AuditRecord:  # fmt: skip
    """A look-up the console made (its chain, its page), indexed."""
    import asyncio

    sink = SignedSink("console:test", keys, verifier, seconds=30)  # between two CLI look-ups
    mine = asyncio.run(
        record_query(sink, officer=officer, page=page, subject_keys=subject_keys,
                     detail={"purpose": purpose})
    )  # fmt: skip
    sink.index(store)
    return mine


def subject(run_cli: Run, audit_db_url: str, officer: str, reason: str, *extra: str) -> str:
    argv = ["audit", "subject", "--nhs-number", CHILD_NHS, "--db", audit_db_url]
    code, out, err = run_cli([*argv, "--as", officer, "--reason", reason, *extra])
    assert (code, err) == (0, ""), err
    return out


def section(out: str) -> list[str]:
    """The table's look-ups: its heading and each line, as printed."""
    return out[out.index(HEADING) :].splitlines()


def when(record: AuditRecord) -> str:
    return f"{record.at:%Y-%m-%d %H:%M} UTC"


def test_the_table_lists_two_officers_look_ups_and_not_the_one_being_made(
    cli_chain: SignedSink, store: AuditStore, keys: FileKeyStore,
    verifier: KeystoreAuditVerifier, linker: Linker, audit_db_url: str, run_cli: Run,
) -> None:  # fmt: skip
    child = (linker.from_nhs_number(CHILD_NHS),)
    first = subject(run_cli, audit_db_url, "ig.jo", "complaint")
    # The first look-up: none before it, and its own is not listed.
    assert section(first) == [f"{HEADING}: none before this one"]
    jo = store.subject_lookups(child[0])[-1]
    sam = on_the_console(store, keys, verifier, officer="ig.sam", page="subject",
                         subject_keys=child, purpose="subject_access_request")  # fmt: skip

    out = subject(run_cli, audit_db_url, "ig.kim", "audit_sample", "--format", "table")
    assert section(out) == [
        f"{HEADING}: 2 look-ups, oldest first (this one is not listed)",
        f"  {when(jo)}: ig.jo from the command line (complaint)",
        f"  {when(sam)}: ig.sam from the console (subject access request)",
    ]
    assert "ig.kim" not in "".join(section(out)[1:])
    # ig.kim's look-up was written before the table was printed, and is listed the next time.
    assert [r.data["officer"] for r in store.subject_lookups(child[0])] == [
        "ig.jo", "ig.sam", "ig.kim"
    ]  # fmt: skip
    again = subject(run_cli, audit_db_url, "ig.jo", "complaint")
    assert section(again)[-1].endswith(": ig.kim from the command line (audit sample)")


def test_json_lists_the_look_ups_after_the_log_s_lines(
    cli_chain: SignedSink, store: AuditStore, keys: FileKeyStore,
    verifier: KeystoreAuditVerifier, linker: Linker, audit_db_url: str, run_cli: Run,
) -> None:  # fmt: skip
    child = (linker.from_nhs_number(CHILD_NHS),)
    first = json.loads(subject(run_cli, audit_db_url, "ig.jo", "complaint", "--format", "json"))
    # The log's lines only, as before: the run's own look-up is not an earlier one.
    assert [e["kind"] for e in first] == [
        "decision", "decision", "delivered", "decision", "delivered", "opened"
    ]  # fmt: skip
    jo = store.subject_lookups(child[0])[-1]
    sam = on_the_console(store, keys, verifier, officer="ig.sam", page="subject",
                         subject_keys=child, purpose="subject_access_request")  # fmt: skip

    answer = json.loads(subject(run_cli, audit_db_url, "ig.kim", "audit_sample", "--format",
                                "json"))  # fmt: skip
    assert [e["kind"] for e in answer[:6]] == [e["kind"] for e in first]
    assert answer[6:] == [
        {"at": jo.at.isoformat(), "kind": "looked_up", "officer": "ig.jo", "via": "cli",
         "page": "cli.subject", "purpose": "complaint", "copy": None,
         "audit_ref": f"{jo.chain}#{jo.seq}"},
        {"at": sam.at.isoformat(), "kind": "looked_up", "officer": "ig.sam", "via": "console",
         "page": "subject", "purpose": "subject_access_request", "copy": None,
         "audit_ref": f"{sam.chain}#{sam.seq}"},
    ]  # fmt: skip
    # A time as the log's lines give theirs, so the whole answer sorts by it.
    assert all(datetime.fromisoformat(e["at"]).tzinfo is not None for e in answer)


def _look_up_lines(out: str, fmt: str) -> list[str]:
    if fmt == "json":
        return [json.dumps(e) for e in json.loads(out) if e["kind"] == "looked_up"]
    return section(out)[1:]


BY_NAME = ["--given-name", "Siân", "--family-name", "O'Neill", "--dob", "2016-03-04"]


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_look_ups_name_no_child_neither_this_one_nor_another_a_report_showed(
    fmt: str, cli_chain: SignedSink, store: AuditStore, keys: FileKeyStore,
    verifier: KeystoreAuditVerifier, linker: Linker, audit_db_url: str, run_cli: Run,
) -> None:  # fmt: skip
    child, other = linker.from_nhs_number(CHILD_NHS), linker.from_nhs_number(OTHER_CHILD_NHS)
    # The dashboard's look-up names every child it showed: this one and another.
    on_the_console(store, keys, verifier, officer="ig.sam", page="dashboard",
                   subject_keys=(child, other), purpose="oversight")  # fmt: skip
    subject(run_cli, audit_db_url, "ig.ali", "override_review")

    out = subject(run_cli, audit_db_url, "ig.kim", "audit_sample", "--format", fmt)
    lines = _look_up_lines(out, fmt)
    assert len(lines) == 2
    for personal in (CHILD_NHS, "999 701 7463", OTHER_CHILD_NHS, other, child):
        assert personal not in "\n".join(lines)
    # The other child is in no part of the answer; this one by the keys the command prints.
    for personal in (CHILD_NHS, "999 701 7463", OTHER_CHILD_NHS, other):
        assert personal not in out


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_a_look_up_by_name_is_listed_without_what_was_typed(
    fmt: str, cli_chain: SignedSink, audit_db_url: str, run_cli: Run,
) -> None:  # fmt: skip
    argv = ["audit", "subject", *BY_NAME, "--db", audit_db_url, "--reason", "complaint"]
    code, _, err = run_cli([*argv, "--as", "ig.jo"])
    assert code == 0, err
    code, out, err = run_cli([*argv, "--as", "ig.kim", "--format", fmt])
    assert code == 0, err
    [line] = _look_up_lines(out, fmt)
    assert "ig.jo" in line
    assert "complaint" in line
    for typed in ("Siân", "Sian", "O'Neill", "ONeill", "2016-03-04", "2016"):
        assert typed not in out + err


def test_a_quarantine_copy_opened_is_listed_in_the_console_s_words(
    cli_chain: SignedSink, store: AuditStore, keys: FileKeyStore,
    verifier: KeystoreAuditVerifier, linker: Linker, audit_db_url: str, run_cli: Run,
) -> None:  # fmt: skip
    import asyncio

    from broker.audit import AuditKind

    child = linker.from_nhs_number(CHILD_NHS)
    data: dict[str, Any] = {"officer": "ig.lee", "purpose": "subject_access", "copy": "12",
                            "reason": "invalid-event"}  # fmt: skip

    async def build() -> list[AuditRecord]:
        return await cli_chain.append(
            lambda w: [w.append(AuditKind.QUARANTINE_OPENED, subject_keys=[child], data=data)]
        )

    [opened] = asyncio.run(build())
    cli_chain.index(store)
    out = subject(run_cli, audit_db_url, "ig.kim", "audit_sample")
    assert section(out)[1:] == [
        f"  {when(opened)}: quarantined record opened by ig.lee for subject access (copy 12, "
        "from the",
        "    command line)",
    ]
    row = json.loads(subject(run_cli, audit_db_url, "ig.kim", "audit_sample", "--format",
                             "json"))[-2]  # fmt: skip
    assert (row["kind"], row["officer"], row["purpose"], row["copy"], row["page"]) == (
        "quarantine_opened", "ig.lee", "subject_access", "12", None
    )  # fmt: skip
