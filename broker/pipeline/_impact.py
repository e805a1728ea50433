"""What a new bundle would change: the retained inputs re-decided under two bundles.

``redecide`` feeds records to a processor of their own, exactly as the worker would take
them (the same stages: open, validate, link, consent filing, decide, redact), with a fresh
state and a clock that reads each record's own time. It keeps the ``decided`` audit records
and throws away everything else: nothing is delivered, no state is written, no audit record
reaches Kafka. ``compare`` turns two such runs into counts, per agreement, recipient and
reason, of shares that would stop and start, and per recipient of the fields it would
gain or lose. Nothing in it names a child: events are counted, never listed.

Consent governs by time, as in the worker: a consent record counts for events stamped after
it was recorded, so consent records are read from the beginning of ``accord.consent`` and
merged into the ingress by their Kafka timestamps. Events do not depend on one another, so
``--processes N`` splits the events (never the consent records, which every process reads
in full) and merges what comes back.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path

from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from broker.audit import AuditKind, ChainWriter, KeystoreAuditSigner
from broker.config import EnvelopeSettings
from broker.kafka import KafkaClients, Retained, stop_quietly, translated
from broker.keys import FileKeyStore
from broker.pipeline._metrics import Metrics
from broker.pipeline._processor import build_processor
from broker.pipeline._state import WorkerState
from broker.policy import Policy, load_bundle
from broker.principals import Principal
from broker.topics import AUDIT, CONSENT

__all__ = [
    "Decided",
    "Impact",
    "ImpactRow",
    "compare",
    "record_impact",
    "redecide",
    "redecide_both",
]

#: (event id, recipient)
Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Decided:
    """One candidate recipient's decision, as much of it as an impact report compares."""

    shares: bool
    outcome: str
    reason: str | None
    agreement: str | None
    fields: frozenset[str]


def redecide(
    policy: Policy,
    records: Iterable[Retained],
    *,
    keys: FileKeyStore,
    envelope: EnvelopeSettings,
    progress: Callable[[int], None] | None = None,
) -> dict[Key, Decided]:
    """Every decision ``policy`` makes on ``records`` (taken in the order given);
    ``progress`` hears of every 200 records taken."""
    now = [datetime.now(UTC)]
    processor = build_processor(
        policy=policy,
        keys=keys,
        linkage_key=keys.linkage_key(),
        state=WorkerState(),
        # A chain of its own that is never written: the records are only read back here.
        chain=ChainWriter(Principal.WORKER.chain("impact"), clock=lambda: now[0]),
        clock=lambda: now[0],
        envelope=envelope,
        metrics=Metrics(CollectorRegistry()),
        checkpoint_every=2**62,
    )
    out: dict[Key, Decided] = {}
    for n, rec in enumerate(records, 1):
        now[0] = datetime.fromtimestamp(rec.timestamp_ms / 1000, UTC)
        produced = processor.handle(
            rec.topic, rec.partition, rec.offset, rec.value, rec.headers, at=now[0]
        )
        for o in produced:
            if o.topic == AUDIT and b'"kind":"decided"' in o.value:
                audit = json.loads(o.value)
                data = audit["data"]
                out[(audit["event_id"], audit["party"])] = Decided(
                    shares=data["outcome"] != "not_shared",
                    outcome=data["outcome"],
                    reason=data.get("reason"),
                    agreement=data.get("agreement_id"),
                    fields=frozenset(data.get("fields_shared", ())),
                )
        if progress is not None and n % 200 == 0:
            progress(200)
    return out


@dataclass(frozen=True, slots=True)
class ImpactRow:
    """How many decisions move one way, for one agreement, recipient and reason."""

    change: str  # "stops" (shared now, not under the new bundle) or "starts"
    agreement: str  # the agreement that shares (now, for "stops"; new, for "starts")
    recipient: str
    reason: str  # why it is not shared on the other side ("not-a-candidate" if no decision)
    events: int


@dataclass
class Impact:
    current_version: str
    new_version: str
    events: int = 0  # contact events decided (under either bundle)
    decisions: int = 0  # (event, recipient) pairs compared
    unchanged: int = 0
    rows: list[ImpactRow] = field(default_factory=list)
    #: recipient -> field -> events in which it would gain (or lose) that field
    gained: dict[str, dict[str, int]] = field(default_factory=dict)
    lost: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {
            "current_version": self.current_version,
            "new_version": self.new_version,
            "events": self.events,
            "decisions": self.decisions,
            "unchanged": self.unchanged,
            "changes": [
                {
                    "change": r.change,
                    "agreement": r.agreement,
                    "recipient": r.recipient,
                    "reason": r.reason,
                    "events": r.events,
                }
                for r in self.rows
            ],
            "fields_gained": self.gained,
            "fields_lost": self.lost,
        }


_NONE = Decided(False, "not_shared", "not-a-candidate", None, frozenset())


def compare(
    current: dict[Key, Decided], new: dict[Key, Decided], *, versions: tuple[str, str]
) -> Impact:
    """The differences between two runs over the same records."""
    impact = Impact(*versions)
    moves: Counter[tuple[str, str, str, str]] = Counter()
    gained: dict[str, Counter[str]] = {}
    lost: dict[str, Counter[str]] = {}
    keys = set(current) | set(new)
    impact.events = len({event for event, _ in keys})
    impact.decisions = len(keys)
    for key in keys:
        before, after = current.get(key, _NONE), new.get(key, _NONE)
        recipient = key[1]
        if before.shares and not after.shares:
            moves["stops", before.agreement or "", recipient, after.reason or ""] += 1
        elif after.shares and not before.shares:
            moves["starts", after.agreement or "", recipient, before.reason or ""] += 1
        elif before.shares and after.shares and before.fields != after.fields:
            for name in after.fields - before.fields:
                gained.setdefault(recipient, Counter())[name] += 1
            for name in before.fields - after.fields:
                lost.setdefault(recipient, Counter())[name] += 1
        else:
            impact.unchanged += 1
    impact.rows = [ImpactRow(c, a, r, why, n) for (c, a, r, why), n in sorted(moves.items())]
    impact.gained = {r: dict(sorted(c.items())) for r, c in sorted(gained.items())}
    impact.lost = {r: dict(sorted(c.items())) for r, c in sorted(lost.items())}
    return impact


# -- both bundles, in one process or several ----------------------------------------------


def in_order(records: Iterable[Retained]) -> list[Retained]:
    """The order a worker would meet them in, as near as the topics say: by timestamp."""
    return sorted(records, key=lambda r: (r.timestamp_ms, r.topic, r.partition, r.offset))


def _shards(records: Sequence[Retained], n: int) -> list[list[Retained]]:
    """``n`` runs: every consent record in each, the events dealt out between them."""
    consents = [r for r in records if r.topic == CONSENT]
    events = [r for r in records if r.topic != CONSENT]
    return [in_order([*consents, *events[i::n]]) for i in range(n)]


@dataclass(frozen=True)
class _Job:
    current: Path
    new: Path
    keystore: Path
    passphrase: str | None
    envelope: EnvelopeSettings
    records: list[Retained]


def _run(job: _Job) -> tuple[dict[Key, Decided], dict[Key, Decided]]:
    passphrase = SecretStr(job.passphrase) if job.passphrase is not None else None
    keys = FileKeyStore(job.keystore, passphrase)
    return (
        redecide(load_bundle(job.current), job.records, keys=keys, envelope=job.envelope),
        redecide(load_bundle(job.new), job.records, keys=keys, envelope=job.envelope),
    )


def redecide_both(
    current: Path,
    new: Path,
    records: Sequence[Retained],
    *,
    keystore: Path,
    passphrase: SecretStr | None,
    envelope: EnvelopeSettings,
    processes: int = 1,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[Key, Decided], dict[Key, Decided]]:
    """``records`` decided under the bundles in ``current`` and ``new``: in this process,
    or split between ``processes`` (each loads the keystore and both bundles itself)."""
    secret = passphrase.get_secret_value() if passphrase is not None else None
    if processes <= 1:
        keys = FileKeyStore(keystore, passphrase)
        ordered = in_order(records)
        runs = [
            redecide(load_bundle(b), ordered, keys=keys, envelope=envelope, progress=progress)
            for b in (current, new)
        ]
        return runs[0], runs[1]
    jobs = [
        _Job(current, new, keystore, secret, envelope, shard)
        for shard in _shards(records, processes)
    ]
    before: dict[Key, Decided] = {}
    after: dict[Key, Decided] = {}
    # spawn, not fork: the caller may hold an event loop and Kafka clients' threads.
    with ProcessPoolExecutor(min(processes, os.cpu_count() or 1, len(jobs)),
                             mp_context=get_context("spawn")) as pool:  # fmt: skip
        for job, (b, a) in zip(jobs, pool.map(_run, jobs), strict=True):
            before.update(b)
            after.update(a)
            if progress is not None:
                progress(2 * len(job.records))
    return before, after


# -- the audit record of a run ------------------------------------------------------------


async def record_impact(
    kafka: KafkaClients, keys: FileKeyStore, impact: Impact, *, since: datetime | None
) -> str:
    """Write the run's ``policy_impact`` record, signed, on a chain of its own
    (``worker:impact-<id>``: the running worker's chain is the worker's alone); return the
    chain. Counts, versions and party ids only: nothing about a child."""
    chain = Principal.WORKER.chain(f"impact-{uuid.uuid4().hex[:12]}")
    writer = ChainWriter(chain, clock=lambda: datetime.now(UTC))
    data = impact.as_json()
    data["since"] = since.isoformat() if since is not None else None
    records = [
        writer.append(AuditKind.POLICY_IMPACT, data=data),
        writer.checkpoint(KeystoreAuditSigner(keys, Principal.WORKER)),
    ]
    producer = kafka.producer(client_id="accord-policy-impact")
    try:
        async with translated(f"writing to {AUDIT} at {kafka.bootstrap}"):
            await producer.start()
            for rec in records:
                await producer.send_and_wait(AUDIT, rec.to_bytes(), key=chain.encode())
    finally:
        await stop_quietly(producer)
    return chain
