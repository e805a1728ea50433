"""`accord audit subject` lists the child's earlier look-ups, as the console's page does.

Who looked the child up, when, from where and why, under the log in a table (JSON, CSV and
the family's page hold the log alone); the run's own look-up, written before anything is
shown, is not among them, nor one written after it (the console lists them alike). The
look-ups are written and indexed as the command writes them, with Kafka and the password
faked (tests/e2e has them real).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
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


def test_json_holds_the_log_alone_whatever_look_ups_there_were(
    cli_chain: SignedSink, store: AuditStore, keys: FileKeyStore,
    verifier: KeystoreAuditVerifier, linker: Linker, audit_db_url: str, run_cli: Run,
) -> None:  # fmt: skip
    """A script reads each line as a log entry, and a copy passed on as the SAR answer must
    carry no staff logins: the look-ups are the table's."""
    child = (linker.from_nhs_number(CHILD_NHS),)
    first = json.loads(subject(run_cli, audit_db_url, "ig.jo", "complaint", "--format", "json"))
    on_the_console(store, keys, verifier, officer="ig.sam", page="subject",
                   subject_keys=child, purpose="subject_access_request")  # fmt: skip
    answer = json.loads(subject(run_cli, audit_db_url, "ig.kim", "audit_sample", "--format",
                                "json"))  # fmt: skip
    assert answer == first
    assert {"ig.jo", "ig.sam"}.isdisjoint(json.dumps(answer).split('"'))


def test_a_look_up_written_after_this_one_is_not_called_earlier(
    store: AuditStore, keys: FileKeyStore, verifier: KeystoreAuditVerifier, linker: Linker,
    indexed: list[AuditRecord],
) -> None:  # fmt: skip
    """Two officers at once: the other's look-up, indexed while this one ran, came after it."""
    import asyncio

    from broker.governance import earlier_lookups

    child = (linker.from_nhs_number(CHILD_NHS),)

    sink = SignedSink("console:test", keys, verifier)  # one chain: a minute apart, in turn
    made = []
    for officer in ("ig.jo", "ig.kim", "ig.sam"):
        made.append(asyncio.run(record_query(sink, officer=officer, page="subject",
                                             subject_keys=child,
                                             detail={"purpose": "complaint"})))  # fmt: skip
    sink.index(store)
    jo, kim, sam = made
    assert [r.hash for r in earlier_lookups(store, child, kim)] == [jo.hash]
    assert [r.hash for r in earlier_lookups(store, child, sam)] == [jo.hash, kim.hash]


def _look_up_lines(out: str) -> list[str]:
    return section(out)[1:]


BY_NAME = ["--given-name", "Siân", "--family-name", "O'Neill", "--dob", "2016-03-04"]


def test_look_ups_name_no_child_neither_this_one_nor_another_a_report_showed(
    cli_chain: SignedSink, store: AuditStore, keys: FileKeyStore,
    verifier: KeystoreAuditVerifier, linker: Linker, audit_db_url: str, run_cli: Run,
) -> None:  # fmt: skip
    child, other = linker.from_nhs_number(CHILD_NHS), linker.from_nhs_number(OTHER_CHILD_NHS)
    # The dashboard's look-up names every child it showed: this one and another.
    on_the_console(store, keys, verifier, officer="ig.sam", page="dashboard",
                   subject_keys=(child, other), purpose="oversight")  # fmt: skip
    subject(run_cli, audit_db_url, "ig.ali", "override_review")

    out = subject(run_cli, audit_db_url, "ig.kim", "audit_sample")
    lines = _look_up_lines(out)
    assert len(lines) == 2
    for personal in (CHILD_NHS, "999 701 7463", OTHER_CHILD_NHS, other, child):
        assert personal not in "\n".join(lines)
    # The other child is in no part of the answer; this one by the keys the command prints.
    for personal in (CHILD_NHS, "999 701 7463", OTHER_CHILD_NHS, other):
        assert personal not in out


def test_a_look_up_by_name_is_listed_without_what_was_typed(
    cli_chain: SignedSink, audit_db_url: str, run_cli: Run,
) -> None:  # fmt: skip
    argv = ["audit", "subject", *BY_NAME, "--db", audit_db_url, "--reason", "complaint"]
    code, _, err = run_cli([*argv, "--as", "ig.jo"])
    assert code == 0, err
    code, out, err = run_cli([*argv, "--as", "ig.kim"])
    assert code == 0, err
    [line] = _look_up_lines(out)
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
