"""The audit index end to end: project scenarios → real worker → accord.audit → index → reports.

A selection of the project's own scenarios (``policies/scenarios``, on the project's bundle;
see ``tests/e2e/playback.py``) goes through the pipeline and recipients acknowledge openings
through the SDK; ``accord audit index`` fills SQLite and PostgreSQL indexes; ``accord audit
subject`` for the child seen in the most events must list exactly the decisions
``policy.decide`` gives for that child's events plus the openings sent, ``verify`` must pass,
no seeded personal value may appear in the databases or in any report, and the one
safeguarding override can be reviewed once from the command line.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.audit import AuditKind
from broker.cli import main
from broker.config import load_settings
from broker.console import TotpBox, UserFile
from broker.devkafka import EmbeddedKafka
from broker.governance import AuditStore, open_store
from broker.keys import FileKeyStore
from broker.linkage import Linker
from broker.policy import Scenario
from broker.sdk import Delivery, Subscriber
from tests.e2e.playback import (
    PROJECT_POLICIES,
    Harness,
    busiest_child,
    project_scenarios,
    scenario_event_id,
)
from tests.e2e.worker_proc import read_audit
from tests.kafka_helpers import clients, kafka_env

pytestmark = pytest.mark.slow

PERSONAL = ("given_name", "family_name", "postcode", "address", "nhs_number", "dob")
FREE_TEXT = ("summary", "child_voice", "location", "reference")


def seeded_values(scenarios: list[Scenario]) -> set[str]:
    """Every personal or free-text value the scenarios seed (what must never be indexed)."""
    out: set[str] = set()
    for s in scenarios:
        for subject in s.event.get("subjects", []):
            out |= {str(subject[k]) for k in PERSONAL if subject.get(k)}
        out |= {str(s.event[k]) for k in FREE_TEXT if s.event.get(k)}
        for c in s.consents:
            out |= {str(v) for k, v in c.get("subject", {}).items() if k in PERSONAL and v}
    return {v for v in out if len(v) >= 3}


OFFICER, PASSWORD = "ig-jo", "correct horse battery staple"


HOST = "ig-desk"


def as_officer(*argv: str, reason: str) -> list[str]:
    """A look-up command run by the test's officer, password on standard input."""
    return [*argv, "--reason", reason, "--as", OFFICER, "--password-stdin", "--host", HOST]


async def cli(
    argv: list[str], capsys: pytest.CaptureFixture[str], *, password: str = PASSWORD
) -> tuple[int, str, str]:
    def run() -> int:
        stdin = sys.stdin
        sys.stdin = io.StringIO(password + "\n")
        try:
            main(argv)
        except SystemExit as exc:
            return int(exc.code or 0)
        finally:
            sys.stdin = stdin
        return 0

    code = await asyncio.to_thread(run)  # the CLI runs its own event loop
    out = capsys.readouterr()
    return code, out.out, _without_kafka_client_lines(out.err)


def _without_kafka_client_lines(err: str) -> str:
    """stderr without aiokafka's own JSON log lines (a group coordinator not yet available on
    a busy machine, logged by the Kafka client as it retries): the CLI's output is the rest."""
    kept = []
    for line in err.splitlines(keepends=True):
        try:
            record = json.loads(line)
        except ValueError:
            kept.append(line)
            continue
        if not (isinstance(record, dict) and str(record.get("logger", "")).startswith("aiokafka")):
            kept.append(line)
    return "".join(kept)


@pytest.fixture
def pg_url(postgres_server: str) -> Iterator[str]:
    from tests.postgres import fresh_database

    yield from fresh_database(postgres_server)


def dump(store: AuditStore) -> str:
    tables = ("audit_records", "audit_subjects", "chain_heads", "chain_checkpoints",
              "kafka_offsets", "override_reviews")  # fmt: skip
    cells = [str(c) for t in tables for row in store._q(f"SELECT * FROM {t}") for c in row]  # type: ignore[attr-defined]  # noqa: S608  # our table names
    # Checkpoint signatures are random base64: a short name can turn up inside one by chance.
    return "\n".join(re.sub(r'"signature":"[^"]*"', '"signature":"-"', c) for c in cells)


def _lookups(store: AuditStore, key: str) -> list[tuple[str, ...]]:
    """The look-ups about a subject: (chain, officer, page, purpose)."""
    return [(r.chain, r.data["officer"], r.data["page"], r.data["detail"]["purpose"])
            for r in store.subject_lookups(key)]  # fmt: skip


async def test_subject_log_lists_exactly_the_childs_decisions_and_openings(  # noqa: PLR0915  # one story, told in order
    *,
    isolated_kafka: EmbeddedKafka, tmp_path: Path, project_keys: FileKeyStore, pg_url: str,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    keys, policies = project_keys, PROJECT_POLICIES
    h = Harness(isolated_kafka.bootstrap, policies, keys, tmp_path)
    scenarios = project_scenarios()
    linker = Linker(keys.linkage_key())
    nhs = busiest_child(scenarios)  # the disclosure log under test
    child_key = linker.from_nhs_number(nhs)

    expected: set[tuple[Any, ...]] = set()
    child_shares: set[tuple[str, str]] = set()
    await h.start(scenarios[0].at)
    try:
        decisions = await h.play_all(scenarios, linker)
        for d, named in decisions:
            if child_key in named:
                row = (str(d.event_id), d.recipient, d.outcome, tuple(d.clause_ids))
                expected.add(("decision", *row, tuple(d.fields_shared), d.purpose))
                if d.shares:
                    child_shares.add((str(d.event_id), d.recipient))
        assert child_shares, "the chosen child should have had something shared"
        overrides = [(str(d.event_id), d.recipient) for d, _ in decisions
                     if d.outcome == "shared_override"]  # fmt: skip
        assert len(overrides) == 1, "the scenarios should hold one safeguarding override"
        overridden = {k for d, named in decisions if d.outcome == "shared_override" for k in named}

        # Each recipient that received the child's records opens them through the SDK.
        opened: set[tuple[Any, ...]] = set()
        for recipient in sorted({r for _, r in child_shares}):
            kafka = clients(isolated_kafka.bootstrap, recipient)
            memory = tmp_path / f"replay-{recipient}.sqlite3"
            async with Subscriber(
                recipient, keys, kafka, f"{recipient}.audit-e2e", replay_memory=memory
            ) as sub:
                # Until it has opened everything shared with it (or 60 s): no fixed window.
                mine = {(e, r) for e, r in child_shares if r == recipient}
                deadline = asyncio.get_running_loop().time() + 60
                while not mine <= {(e, r) for _, e, r, _ in opened} and (
                    asyncio.get_running_loop().time() < deadline
                ):
                    for record in await sub.poll(0.5):
                        msg = record.message
                        if isinstance(msg, Delivery) and (msg.event_id, recipient) in child_shares:
                            by = f"{recipient}/practitioner-1"
                            await record.opened(by=by, purpose=msg.purpose)
                            opened.add(("opened", msg.event_id, recipient, by))
        assert {(e, r) for _, e, r, _ in opened} == child_shares
        await h.wait_for(h.count(AuditKind.OPENED, len(opened)))
    finally:
        await h.finish()

    # The consent withdrawal among the scenarios: the log records the notice telling the
    # co-ordinating team (and only it) to stop using what it was sent under that consent.
    under_consent = next(s for s in scenarios if s.name.startswith("with consent a concern"))
    notices = [(r.party, tuple(r.data["event_ids"])) for r in await read_audit(h.bootstrap)
               if r.kind is AuditKind.CONSENT_WITHDRAWN_NOTICE]  # fmt: skip
    assert notices == [("sandwell-coord", (scenario_event_id(under_consent),))]

    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    for name, value in kafka_env(isolated_kafka.bootstrap).items():  # as the indexer, console
        monkeypatch.setenv(name, value)
    settings = load_settings()
    console_keys = FileKeyStore(settings.keystore_path("console"), settings.keystore_passphrase())
    box = TotpBox.from_keystore(console_keys, "console", create=True)
    UserFile(settings.console_users_file, box=box).add(OFFICER, PASSWORD)
    seeded = seeded_values(scenarios)
    for url in (f"sqlite:///{tmp_path / 'audit.db'}", pg_url):
        # The configured index, each in turn: an answer from any other is from a copy, and
        # says so on stderr.
        monkeypatch.setenv("ACCORD_AUDIT_DB", url)
        code, out, err = await cli(["audit", "index", "--db", url], capsys)
        assert (code, err) == (0, ""), err
        code, out, err = await cli(["audit", "verify", "--db", url], capsys)
        assert (code, err) == (0, ""), err
        assert out.startswith("audit log intact")
        code, out, err = await cli(["audit", "verify", "--from-topic", "--db", url], capsys)
        assert (code, err) == (0, ""), err
        assert out.startswith("audit log intact (topic)")

        subject = as_officer("audit", "subject", "--nhs-number", nhs, "--db", url,
                             reason="subject_access_request")  # fmt: skip
        code, out, err = await cli([*subject, "--format", "json"], capsys)
        assert (code, err) == (0, ""), err
        entries = json.loads(out)
        got_decisions = {
            ("decision", e["event_id"], e["recipient"], e["outcome"], tuple(e["clauses"]),
             tuple(e["fields_shared"]), e["purpose"])
            for e in entries if e["kind"] == "decision"
        }  # fmt: skip
        got_opened = {("opened", e["event_id"], e["recipient"], e["opened_by"])
                      for e in entries if e["kind"] == "opened"}  # fmt: skip
        assert got_decisions == expected
        assert got_opened == opened
        delivered = [(e["event_id"], e["recipient"]) for e in entries if e["kind"] == "delivered"]
        assert sorted(delivered) == sorted(child_shares)  # each share sent, once
        consent = [e for e in entries
                   if e["kind"] in ("consent", "consent_refused", "withdrawal_notice")]  # fmt: skip
        # Received about the child and shared with no one (no recipient): listed once, and
        # never for an event with a decision about them.
        received = [e for e in entries if e["kind"] == "received"]
        assert not {e["event_id"] for e in received} & {d[1] for d in got_decisions}
        # nothing twice
        assert len(entries) == (len(expected) + len(delivered) + len(opened) + len(consent)
                                + len(received))  # fmt: skip
        assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)

        outputs = [out]
        for fmt in ("table", "csv", "html"):
            code, text, _ = await cli([*subject, "--format", fmt], capsys)
            outputs.append(text)
        report = as_officer("audit", "report", "--db", url, reason="oversight")
        code, text, _ = await cli([*report, "--policies", str(policies)], capsys)
        assert code == 0
        outputs.append(text)
        store = open_store(url, home=tmp_path)
        try:
            outputs.append(dump(store))
            # Every look-up from the command line is among the child's earlier look-ups, in
            # the officer's name and with the reason given, as the console shows them.
            looked = (f"console:{HOST}.cli", OFFICER, "cli.subject", "subject_access_request")
            mine = [m for m in _lookups(store, child_key) if m[2] == "cli.subject"]
            assert mine[-4:] == [looked] * 4
            # The report shows the override awaiting review: its record names that child too.
            reported = (f"console:{HOST}.cli", OFFICER, "cli.report", "oversight")
            assert overridden
            assert all(reported in _lookups(store, k) for k in overridden)
        finally:
            store.close()
        leaked = {v for v in seeded for text in outputs if v in text}
        assert leaked == set(), f"personal values leaked ({len(leaked)})"

    # An IG officer reviews the one safeguarding override from the command line: the review
    # goes to the log, the index files it, the queue empties, and the log verifies.
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    monkeypatch.delenv("ACCORD_AUDIT_DB")  # the default, <home>/audit.db, is the live one
    report = [*as_officer("audit", "report", "--db", url, reason="override_review"),
              "--format", "json"]  # fmt: skip
    code, out, err = await cli(report, capsys)
    assert (code, err) == (0, ""), err
    [pending] = json.loads(out)["pending_overrides"]
    # A wrong password shows nothing (the sign-in comes first); the error names no account.
    code, out, err = await cli(report, capsys, password="not the password")
    assert (code, out) == (1, "")  # SignInFailed
    assert err.startswith(
        "accord: error: sign-in failed: wrong account name, password or code (accounts read from "
    )
    assert (pending["event_id"], pending["recipient"]) == overrides[0]
    argv = ["audit", "review-override", pending["event_id"], "--recipient", pending["recipient"],
            "--as", OFFICER, "--password-stdin", "--finding", "justified",
            "--reference", "IG-2026-114",
            "--db", url, "--host", "ig-desk"]  # fmt: skip
    code, out, err = await cli(argv, capsys)
    assert (code, err) == (0, ""), err
    assert out.startswith(f"override for event {pending['event_id']} to {pending['recipient']} "
                          f"reviewed (console:{HOST}.cli#")  # fmt: skip
    code, out, err = await cli(report, capsys)
    assert json.loads(out)["pending_overrides"] == []
    code, out, err = await cli(argv, capsys)  # a second review of the same override
    assert code == 2
    assert err.startswith("accord: error: the override for that event and recipient was already")
    assert "already reviewed by ig-jo" in err
    code, out, err = await cli(["audit", "verify", "--from-topic", "--db", url], capsys)
    assert (code, err) == (0, ""), err
