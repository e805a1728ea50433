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
from broker.governance import AuditStore, open_store, subject_search, verify_store
from broker.kafka import Retained
from broker.keys import FileKeyStore
from broker.linkage import Linker
from broker.principals import Principal
from broker.topics import QUARANTINE, SCHEMA_QUARANTINE
from tests.unit.audit.conftest import CHILD_NHS, T0, Run, index_records

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
def value() -> bytes:
    """The quarantined record's value as sent, held in the copy."""
    return JUNK


@pytest.fixture
def sink(
    value: bytes,
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
               "value": _b64(value)}  # fmt: skip
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


# A contact event refused as invalid (no need level) that names a child: whoever opens its
# copy sees the child's details, so the child's subject access request must list the opening.
CHILD = {"role": "child", "nhs_number": CHILD_NHS, "given_name": "Amy", "family_name": NAME,
         "dob": "2015-03-01", "postcode": "dy4 7aa"}  # fmt: skip
NAMING = json.dumps({
    "event_id": EVENT, "type": "contact", "sender": "wmp",
    # A parent given by an NHS number that fails its check digit, and no name: keyed by nothing.
    "subjects": [CHILD, {"role": "parent", "nhs_number": "1234567890", "given_name": "Jo"}],
}).encode()  # fmt: skip


@pytest.mark.parametrize("value", [NAMING])
def test_an_opening_of_a_copy_naming_a_child_is_among_that_childs_look_ups(
    sink: Sink, run_cli: Run, store: AuditStore, verifier: KeystoreAuditVerifier, linker: Linker,
    keys: FileKeyStore,
) -> None:  # fmt: skip
    code, out, err = run_cli([*OPEN, "--as", "ig.jo", "--purpose", "subject_access",
                              "--host", "ig-desk"])  # fmt: skip
    assert code == 0, err
    assert NAME in out
    assert "filed under 3 subject keys of the children the copy names" in err
    [opening, _] = sink.records
    assert opening.data["purpose"] == "subject_access"
    by_nhs = subject_search(keys.linkage_key(), now=T0, nhs_number=CHILD_NHS)
    by_name = subject_search(keys.linkage_key(), now=T0, given_name="Amy", family_name=NAME,
                             dob="2015-03-01", postcode="DY4 7AA")  # fmt: skip
    assert set(opening.subject_keys) == {*by_nhs.keys, *by_name.keys}
    assert linker.from_nhs_number(CHILD_NHS) in opening.subject_keys
    written = b"".join(r.to_bytes() for r in sink.records)
    for content in (NAME.encode(), CHILD_NHS.encode(), b"Amy", b"2015-03-01", b"DY4"):
        assert content not in written  # keys only
    assert index_records(store, verifier, sink.records).breaks == []
    # Found by NHS number and by name, as 'accord audit subject' and the console search.
    for search in (by_nhs, by_name):
        found = {r.hash: r for k in search.keys for r in store.subject_lookups(k)}
        assert [(r.kind, r.data["officer"]) for r in found.values()] == [
            (AuditKind.QUARANTINE_OPENED, "ig.jo")
        ]


def test_an_opening_of_a_copy_naming_no_one_says_no_request_will_list_it(
    sink: Sink, run_cli: Run
) -> None:
    code, _, err = run_cli([*OPEN, *WHO])
    assert code == 0, err
    assert "filed under no subject key, so no subject access request lists it" in err
    assert sink.records[0].subject_keys == ()
