"""Audit records as the worker writes them, signed with a real keystore's audit key."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from broker.audit import (
    AuditKind,
    AuditRecord,
    ChainWriter,
    KeystoreAuditSigner,
    KeystoreAuditVerifier,
)
from broker.config import KemSuite
from broker.envelope import KeyPurpose
from broker.governance import AuditStore, IndexSummary, open_store
from broker.governance._index import ChainTracker
from broker.keys import FileKeyStore
from broker.linkage import Linker
from broker.principals import Principal

CHILD_NHS = "9997017463"
PARENT_NHS = "9991742182"
T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


@pytest.fixture
def audit_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """ACCORD_HOME with a keystore holding the chain writers' keys, and a linkage key."""
    home = tmp_path / "home"
    keys = FileKeyStore(home / "keys", create=True)
    for writer in ("worker", "console"):
        keys.ensure_party(writer, kem=KemSuite.X25519)
    keys.set_linkage_key()
    monkeypatch.setenv("ACCORD_HOME", str(home))
    monkeypatch.delenv("ACCORD_AUDIT_DB", raising=False)
    return home


@pytest.fixture
def keys(audit_home: Path) -> FileKeyStore:
    return FileKeyStore(audit_home / "keys")


@pytest.fixture
def verifier(keys: FileKeyStore) -> KeystoreAuditVerifier:
    return KeystoreAuditVerifier(keys)


@pytest.fixture
def linker(audit_home: Path) -> Linker:
    return Linker(FileKeyStore(audit_home / "keys").linkage_key())


@pytest.fixture
def store(
    audit_db_url: str, audit_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AuditStore]:
    """The index, configured as this deployment's (a test verifying a copy says so)."""
    monkeypatch.setenv("ACCORD_AUDIT_DB", audit_db_url)
    s = open_store(audit_db_url, home=audit_home)
    yield s
    s.close()


def decision(outcome: str, **extra: Any) -> dict[str, Any]:
    """``decided`` data shaped like ``Decision.model_dump`` (minus event id and recipient)."""
    data: dict[str, Any] = {
        "event_type": "police.domestic_incident",
        "sender": "wmp",
        "recipient_kind": "hub",
        "outcome": outcome,
        "reason": None if outcome != "not_shared" else "consent-missing",
        "clause_ids": ["isa-1/c1"] if outcome != "not_shared" else [],
        "agreement_id": "isa-1" if outcome != "not_shared" else None,
        "purpose": "early_help",
        "lawful_basis": {"article6": "public_task", "article9": "safeguarding_children"},
        "consent": "missing",
        "fields_shared": ["subject.name", "event.type"] if outcome != "not_shared" else [],
        "fields_withheld": ["subject.address"],
        "review_required": outcome == "shared_override",
        "override_grounds": "safeguarding_concern" if outcome == "shared_override" else None,
        "decided_at": T0.isoformat(),
        "policy_version": "sha256:abc",
    }
    data.update(extra)
    return data


def worker_chain(
    linker: Linker, keys: FileKeyStore, *, chain: str = "worker:w1"
) -> list[AuditRecord]:
    """Two events about one child (one with a parent), decisions, deliveries, an opening."""
    tick = iter(range(10_000))

    def clock() -> datetime:
        return T0 + timedelta(minutes=next(tick))

    w = ChainWriter(chain, clock=clock)
    signer = KeystoreAuditSigner(keys, Principal(chain.partition(":")[0]))
    child, parent = linker.from_nhs_number(CHILD_NHS), linker.from_nhs_number(PARENT_NHS)
    out = [w.append(AuditKind.POLICY_LOADED, data={"version": "sha256:abc"})]
    out.append(
        w.append(AuditKind.RECEIVED, event_id="e1", party="wmp", subject_keys=[child, parent])
    )
    out.append(
        w.append(
            AuditKind.DECIDED,
            event_id="e1",
            party="coord",
            subject_keys=[child, parent],
            data=decision("shared"),
        )
    )
    out.append(
        w.append(
            AuditKind.DECIDED,
            event_id="e1",
            party="hub-a",
            subject_keys=[child, parent],
            data=decision("not_shared"),
        )
    )
    out.append(
        w.append(
            AuditKind.DELIVERED,
            event_id="e1",
            party="coord",
            subject_keys=[child],
            data={"topic": "accord.deliver.coord", "outcome": "shared", "fields": []},
        )
    )
    out.append(w.checkpoint(signer))
    out.append(
        w.append(
            AuditKind.OPENED,
            event_id="e1",
            party="coord",
            data={
                "by": "coord/officer-7",
                "purpose": "early_help",
                "at": (T0 + timedelta(hours=2)).isoformat(),
            },
        )
    )
    out.append(w.append(AuditKind.RECEIVED, event_id="e2", party="wmp", subject_keys=[child]))
    out.append(
        w.append(
            AuditKind.DECIDED,
            event_id="e2",
            party="school-1",
            subject_keys=[child],
            data=decision("shared_override"),
        )
    )
    out.append(
        w.append(
            AuditKind.DELIVERED,
            event_id="e2",
            party="school-1",
            subject_keys=[child],
            data={"topic": "accord.deliver.school-1", "outcome": "shared_override", "fields": []},
        )
    )
    out.append(w.append(AuditKind.QUARANTINED, party="wmp", data={"reason": "invalid-event"}))
    out.append(w.append(AuditKind.RECEIVED, event_id="e3", party="wmp", subject_keys=[parent]))
    out.append(
        w.append(
            AuditKind.DECIDED,
            event_id="e3",
            party="coord",
            subject_keys=[parent],
            data=decision("shared"),
        )
    )
    out.append(w.checkpoint(signer))
    out.append(
        w.append(
            AuditKind.DELIVERED,
            event_id="e3",
            party="coord",
            subject_keys=[parent],
            data={"topic": "accord.deliver.coord", "outcome": "shared", "fields": []},
        )
    )
    out.append(w.checkpoint(signer))  # the worker signs at the end of every transaction
    return out  # fmt: skip


OTHER_CHILD_NHS = "9990000018"
WITHDRAWAL_ID = "5a0c1f7e-9d3b-4c2a-8e6f-1b2c3d4e5f60"
OTHER_WITHDRAWAL_ID = "7b1d2e8f-0a4c-4d3b-9f70-2c3d4e5f6071"


def withdrawal_chain(
    linker: Linker, keys: FileKeyStore, *, chain: str = "worker:w9"
) -> list[AuditRecord]:
    """An hour after ``worker_chain``: sandwell-coord withdraws the child's consent; the
    worker tells coord (delivered) and school-1 (no key to seal to: undelivered). The same
    for another child, by a health visitor, told to coord; and a consent record refused."""
    tick = iter(range(10_000))
    w = ChainWriter(chain, clock=lambda: T0 + timedelta(hours=1, minutes=next(tick)))
    child, other = linker.from_nhs_number(CHILD_NHS), linker.from_nhs_number(OTHER_CHILD_NHS)
    withdrawn = {
        "state": "withdrawn",
        "purposes": ["early_help"],
        "recipients": ["*"],
        "recorded_at": (T0 + timedelta(minutes=50)).isoformat(),
        "valid_until": None,
    }
    out = [
        w.append(AuditKind.CONSENT_RECORDED, event_id=WITHDRAWAL_ID, party="sandwell-coord",
                 subject_keys=[child], data=withdrawn),
        w.append(AuditKind.CONSENT_WITHDRAWN_NOTICE, event_id=WITHDRAWAL_ID, party="coord",
                 subject_keys=[child], data={"event_ids": ["e1"], "purposes": ["early_help"]}),
        w.append(AuditKind.CONSENT_WITHDRAWN_NOTICE, event_id=WITHDRAWAL_ID, party="school-1",
                 subject_keys=[child], data={"event_ids": ["e2"], "purposes": ["early_help"],
                                             "undelivered": "recipient-key-unavailable"}),
        w.append(AuditKind.CONSENT_REFUSED, event_id="c-refused", party="wmp",
                 subject_keys=[child],
                 data={**withdrawn, "state": "given", "reason": "not-a-consent-authority"}),
        w.append(AuditKind.CONSENT_RECORDED, event_id=OTHER_WITHDRAWAL_ID, party="hv-sandwell",
                 subject_keys=[other], data=withdrawn),
        w.append(AuditKind.CONSENT_WITHDRAWN_NOTICE, event_id=OTHER_WITHDRAWAL_ID,
                 party="hub-a", subject_keys=[other],
                 data={"event_ids": ["e-other"], "purposes": ["early_help"],
                       "undelivered": "recipient-key-unavailable"}),
    ]  # fmt: skip
    out.append(w.checkpoint(KeystoreAuditSigner(keys, Principal.WORKER)))
    return out


def quiet_chain(
    keys: FileKeyStore, chain: str = "worker:quiet"
) -> tuple[list[AuditRecord], ChainWriter, KeystoreAuditSigner]:
    """Records 0-1 and checkpoint 2, then 3-4 and checkpoint 5, all by the worker's key K1
    (``rotate_and_revoke`` next, as the tests need); the writer to go on with, and its
    signer (which signs with the worker's current key)."""
    at = iter(range(1000))
    w = ChainWriter(chain, clock=lambda: T0 + timedelta(minutes=next(at)))
    signer = KeystoreAuditSigner(keys, Principal.WORKER)
    out = [
        w.append(AuditKind.POLICY_LOADED, data={"version": "v1"}),
        w.append(AuditKind.RECEIVED, event_id="e1", party="wmp"),
        w.checkpoint(signer),
        w.append(AuditKind.RECEIVED, event_id="e2", party="wmp"),
        w.append(AuditKind.QUARANTINED, party="wmp", data={"reason": "invalid-event"}),
        w.checkpoint(signer),
    ]
    return out, w, signer


def rotate_and_revoke(keys: FileKeyStore, old: AuditRecord) -> None:
    """The worker moves to a new signing key; the one that signed ``old`` is revoked."""
    keys.rotate("worker", purposes=[KeyPurpose.SIGN], kem=KemSuite.X25519)
    keys.revoke(str(old.data["key_id"]))


def index_records(
    store: AuditStore, verifier: KeystoreAuditVerifier, records: list[AuditRecord], *,
    topic: str = "accord.audit", start: int = 0,
) -> IndexSummary:  # fmt: skip
    """What the indexer does with messages read from the topic, minus Kafka."""
    tracker = ChainTracker(store, verifier, topic=topic)
    batch = tracker.new_batch()
    for i, rec in enumerate(records):
        tracker.offer(batch, rec.chain.encode(), rec.to_bytes(), 0, start + i)
    assert tracker.commit(batch)
    return tracker.summary


@pytest.fixture
def indexed(
    store: AuditStore, verifier: KeystoreAuditVerifier, linker: Linker, keys: FileKeyStore
) -> list[AuditRecord]:
    records = worker_chain(linker, keys)
    summary = index_records(store, verifier, records)
    assert summary.breaks == []
    return records


Run = Callable[[list[str]], tuple[int, str, str]]


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Run:
    """Run ``accord`` in-process: (exit code, stdout, stderr). A traceback in either fails
    the test: whatever the input, the command line answers in a line, never with one."""
    from broker.cli import main

    def run(argv: list[str]) -> tuple[int, str, str]:
        # Tasks other tests left pending on loops since closed (stops of theirs) are destroyed
        # when the collector reaches them, and asyncio logs that to stderr: collected, and
        # what they said dropped, before the command's own output is read.
        gc.collect()
        capsys.readouterr()
        code: int = 0
        try:
            main(argv)
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = capsys.readouterr()
        assert "Traceback" not in out.out + out.err
        return code, out.out, out.err

    return run


# -- a fake consumer's fetches, for the indexer's unit tests --------------------------------


class Part(NamedTuple):
    topic: str
    partition: int


class Msg(NamedTuple):
    key: bytes | None
    value: bytes | None
    partition: int
    offset: int


def on_topic(records: list[AuditRecord], *, start: int = 0) -> list[Msg]:
    """``records`` as messages of partition 0 from offset ``start``, keyed by their chain."""
    return [Msg(r.chain.encode(), r.to_bytes(), 0, start + i) for i, r in enumerate(records)]


def fetched(records: list[AuditRecord], *, start: int = 0, junk: int = 0) -> dict[Any, list[Msg]]:
    """What a fake consumer's ``getmany`` returns for ``records`` (and ``junk`` bad ones)."""
    msgs = [Msg(r.chain.encode(), r.to_bytes(), 0, start + i) for i, r in enumerate(records)]
    msgs += [Msg(None, b"not a record", 0, start + len(records) + i) for i in range(junk)]
    return {Part("accord.audit", 0): msgs}


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The look-ups the CLI records, with sign-in and Kafka faked (tests/e2e has them real)."""
    import broker.cli._audit

    calls: list[dict[str, Any]] = []

    def record(*_a: object, **kw: Any) -> AuditRecord:
        calls.append(kw)
        # As written, never indexed (the index is as set): not among the child's look-ups.
        data = {"officer": kw["officer"], "page": kw["page"], "detail": kw["detail"]}
        w = ChainWriter("console:test.cli", clock=lambda: T0)
        return w.append(AuditKind.CONSOLE_QUERY, subject_keys=kw["subject_keys"], data=data)

    monkeypatch.setattr(broker.cli._audit, "sign_in", lambda _s, name, **_kw: name)
    monkeypatch.setattr(broker.cli._audit, "_record_lookup", record)
    monkeypatch.setattr(broker.cli._audit, "_index_once", lambda *_a: None)  # the index is as set
    return calls


class RecordingSink:
    """The command line's audit chain with Kafka faked: keeps what would have been written."""

    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    async def append(self, build: Callable[[ChainWriter], list[AuditRecord]]) -> list[AuditRecord]:
        records = build(ChainWriter("console:test.cli", clock=lambda: T0))
        self.records.extend(records)
        return records

    async def close(self) -> None:
        pass


@pytest.fixture(autouse=True)
def verify_records(monkeypatch: pytest.MonkeyPatch) -> list[AuditRecord]:
    """What ``accord audit verify`` writes to the audit log (Kafka faked; tests/e2e has it
    real): autouse, so no test here reaches for a Kafka that is not there."""
    import broker.cli._audit_verify

    sink = RecordingSink()
    monkeypatch.setattr(broker.cli._audit_verify, "appender_of", lambda *_a: sink)
    return sink.records


class FakeKafka:
    """One partition of ``accord.audit`` as a read_committed consumer sees it: ``log`` holds
    the messages written, in offset order (gaps allowed: markers, another writer's records);
    ``stable`` is the last stable offset (None: past the end of ``log``), below it the first
    offset of another writer's transaction still open. Change either between runs."""

    bootstrap = "fake:9092"

    def __init__(self, log: list[Msg], *, stable: int | None = None) -> None:
        self.log = log
        self.stable = stable
        #: Reads of single records (the indexer's reads again) come back empty, as while a
        #: partition's leader moves.
        self.failing_single_reads = False

    def consumer(self, **_: Any) -> FakeConsumer:
        return FakeConsumer(self)


@dataclass
class FakeConsumer:
    """What ``Indexer`` uses of aiokafka's consumer, over a ``FakeKafka``'s one partition."""

    kafka: FakeKafka
    at: int = 0
    fetches: int = 0

    tp = Part("accord.audit", 0)

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def topics(self) -> set[str]:
        return {self.tp.topic}

    def subscribe(self, _: list[str]) -> None: ...
    def assignment(self) -> set[Part]:
        return {self.tp}

    async def seek_to_beginning(self, *_: Any) -> None:
        self.at = 0

    def seek(self, _: Part, offset: int) -> None:
        self.at = offset

    async def position(self, _: Part) -> int:
        return self.at

    def highwater(self, _: Part) -> int:
        return self.kafka.log[-1].offset + 1 if self.kafka.log else 0

    def last_stable_offset(self, tp: Part) -> int:
        return self.highwater(tp) if self.kafka.stable is None else self.kafka.stable

    async def end_offsets(self, tps: list[Part]) -> dict[Part, int]:
        return {tp: self.last_stable_offset(tp) for tp in tps}  # read_committed: the LSO

    async def beginning_offsets(self, tps: list[Part]) -> dict[Part, int]:
        return dict.fromkeys(tps, self.kafka.log[0].offset if self.kafka.log else 0)

    async def getmany(self, *_: Part, max_records: int, **__: int) -> dict[Part, list[Msg]]:
        if max_records == 1 and self.kafka.failing_single_reads:
            self.fetches += 1
            return {}
        stable = self.last_stable_offset(self.tp)
        got = [m for m in self.kafka.log if self.at <= m.offset < stable][:max_records]
        self.at = got[-1].offset + 1 if got else self.at
        if not any(self.at <= m.offset < stable for m in self.kafka.log):
            self.at = max(self.at, stable)  # past markers and aborted records, to the LSO
        self.fetches += 1
        return {self.tp: got} if got else {}
