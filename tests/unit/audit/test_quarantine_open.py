"""``accord audit quarantine --open`` writes its ``quarantine_opened`` record before it prints
the copy, and prints nothing when the record cannot be written. Kafka and the password are
faked here (tests/e2e/test_quarantine_cli.py has them real)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from broker.audit import (
    AuditKind,
    AuditRecord,
    ChainWriter,
    KeystoreAuditSigner,
    KeystoreAuditVerifier,
    may_write,
)
from broker.envelope import Sealer
from broker.errors import TransportError
from broker.governance import open_store, verify_store
from broker.kafka import Retained
from broker.keys import FileKeyStore
from broker.principals import Principal
from broker.topics import QUARANTINE, SCHEMA_QUARANTINE
from tests.unit.audit.conftest import T0, Run, index_records

NAME, NHS = "Smithereen", "9434765919"
JUNK = f"{NAME} {NHS} DY4 7AA".encode()  # a malformed record's bytes may be anything
WMP = "accord.ingress.wmp"
EVENT = "0b7f4c5e-3a52-4d9c-9a3e-2f1c7d6b8e90"
OPEN = ["audit", "quarantine", "--open", "3"]
WHO = ["--as", "ig.jo", "--purpose", "redrive", "--host", "ig-desk"]


@dataclass
class Sink:
    """The command line's audit chain with Kafka faked: signs as the console does, and keeps
    what the command had printed by the time it wrote (``before``)."""

    keys: FileKeyStore
    capsys: pytest.CaptureFixture[str]
    fail: bool = False
    records: list[AuditRecord] = field(default_factory=list)
    before: list[tuple[str, str]] = field(default_factory=list)

    async def append(self, build: Callable[[ChainWriter], list[AuditRecord]]) -> list[AuditRecord]:
        printed = self.capsys.readouterr()
        self.before.append((printed.out, printed.err))
        if self.fail:
            raise TransportError("connecting to Kafka at 127.0.0.1:9: connection refused")
        w = ChainWriter("console:ig-desk.cli", clock=lambda: T0 + timedelta(hours=1))
        records = build(w)
        records.append(w.checkpoint(KeystoreAuditSigner(self.keys, Principal.CONSOLE)))
        self.records += records
        return records

    async def close(self) -> None:
        pass


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.fixture
def quarantined(
    audit_home: Path, keys: FileKeyStore, verifier: KeystoreAuditVerifier
) -> list[AuditRecord]:
    """The live index holding the worker's ``quarantined`` record of wmp's offset 40."""
    keys.ensure_party("governance")  # the KEM the worker seals with by default
    w = ChainWriter(f"worker:{WMP}-0", clock=lambda: T0)
    facts = {"reason": "invalid-event", "stage": "validate", "topic": WMP, "partition": 0,
             "offset": 40, "digest": "ab" * 16, "size": len(JUNK)}  # fmt: skip
    records = [
        w.append(AuditKind.QUARANTINED, event_id=EVENT, party="wmp", data=facts),
        w.checkpoint(KeystoreAuditSigner(keys, Principal.WORKER)),
    ]
    store = open_store(None, home=audit_home, create=True)
    try:
        assert index_records(store, verifier, records).breaks == []
    finally:
        store.close()
    return records


@pytest.fixture
def sink(
    quarantined: list[AuditRecord],
    keys: FileKeyStore,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Sink:
    """Copy 3 on accord.quarantine, sealed by the worker to governance; sign-in, the index's
    catch-up and the audit chain's Kafka faked."""
    import broker.cli._audit_quarantine as command

    facts = quarantined[0].data
    payload = {**facts, "truncated": False, "key": _b64(b"junk-key"), "headers": [],
               "value": _b64(JUNK)}  # fmt: skip
    sealed = Sealer(Principal.WORKER, keys).seal(
        json.dumps(payload).encode(),
        event_id=f"q-{WMP}-0-40",
        recipient=Principal.GOVERNANCE,
        schema=SCHEMA_QUARANTINE,
        topic=QUARANTINE,
    )
    stamped = int((T0 + timedelta(seconds=1)).timestamp() * 1000)
    copy = Retained(QUARANTINE, 0, 3, sealed.value, tuple(sealed.headers), stamped)

    async def read(_settings: Any, **_kw: Any) -> list[Retained]:
        return [copy]

    fake = Sink(keys, capsys)
    monkeypatch.setattr(command, "_read", read)
    monkeypatch.setattr(command, "sign_in", lambda _s, name, **_kw: name)
    monkeypatch.setattr(command, "index_once", lambda *_a: None)
    monkeypatch.setattr(command, "appender_of", lambda *_a: fake)
    return fake


def test_the_opening_is_recorded_before_the_copy_is_printed(
    sink: Sink, run_cli: Run, quarantined: list[AuditRecord]
) -> None:
    code, out, err = run_cli([*OPEN, *WHO])
    assert code == 0, err
    assert NAME in out  # the copy, opened
    [(printed, warned)] = sink.before
    assert (printed, warned) == ("", "")  # nothing at all until the record was written
    assert "may hold personal data" in err
    assert "quarantine_opened (console:ig-desk.cli#0)" in err
    [opening, checkpoint] = sink.records
    assert (opening.kind, checkpoint.kind) == (AuditKind.QUARANTINE_OPENED, AuditKind.CHECKPOINT)
    # Who, why, which copy and the authenticated event id; the worker's quarantined record.
    assert (opening.event_id, opening.party, opening.subject_keys) == (EVENT, "wmp", ())
    assert opening.data == {
        "officer": "ig.jo", "purpose": "redrive", "copy": "3", "copy_partition": 0,
        "copy_offset": 3, "reason": "invalid-event", "stage": "validate", "topic": WMP,
        "partition": 0, "offset": 40, "digest": "ab" * 16,
        "quarantined": f"{quarantined[0].chain}#0",
    }  # fmt: skip
    # Never the copy's content: its value, key or anything in them.
    written = b"".join(r.to_bytes() for r in sink.records)
    for content in (NAME.encode(), NHS.encode(), b"DY4", b"junk-key", _b64(JUNK).encode()):
        assert content not in written


def test_the_record_is_the_consoles_to_write_and_verifies_in_the_index(
    sink: Sink, run_cli: Run, audit_home: Path, verifier: KeystoreAuditVerifier
) -> None:
    code, _, err = run_cli([*OPEN, *WHO, "--format", "json"])
    assert code == 0, err
    assert may_write("console:ig-desk.cli", AuditKind.QUARANTINE_OPENED)
    assert not may_write(f"worker:{WMP}-0", AuditKind.QUARANTINE_OPENED)
    store = open_store(None, home=audit_home)
    try:
        summary = index_records(store, verifier, sink.records, start=2)
        assert (summary.breaks, dict(summary.refused)) == ([], {})
        assert store.count() == 4  # the indexer took both
        verified = verify_store(store, verifier)  # what 'accord audit verify' runs
    finally:
        store.close()
    assert verified.chains == 2


def test_nothing_is_printed_when_the_opening_cannot_be_recorded(sink: Sink, run_cli: Run) -> None:
    sink.fail = True
    code, out, err = run_cli([*OPEN, *WHO])
    assert (code, out) == (1, "")
    assert err == (
        "accord: error: the opening could not be recorded in the audit log, so nothing is "
        "shown: connecting to Kafka at 127.0.0.1:9: connection refused\n"
    )
    assert sink.records == []


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        ([*OPEN, "--host", "ig-desk"], "give --purpose P --as NAME (P one of redrive, "),
        ([*OPEN, "--purpose", "redrive"], "with who opened it and why: give --as NAME\n"),
        (["audit", "quarantine", "--as", "ig.jo"], "sign you in to open a copy: give --open"),
    ],
)
def test_who_and_why_missing_off_a_terminal_is_one_line_and_nothing_opened(
    sink: Sink, run_cli: Run, argv: list[str], said: str
) -> None:
    code, out, err = run_cli(argv)
    assert (code, out, err.count("\n")) == (2, "", 1)
    assert said in err
    assert sink.before == []
