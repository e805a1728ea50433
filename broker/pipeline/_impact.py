"""What a new bundle would change: the retained inputs re-decided under two bundles.

``redecide`` takes records exactly as the worker would, through the worker's own stages,
with a fresh state per bundle and a clock that reads each record's own time, and keeps only
the decisions. What does not depend on the bundle (opening, validating, linking a contact
event; opening and parsing a consent record) is done once per record; what does (routing,
deciding, authorising and filing consent) once per bundle. Nothing is redacted, sealed or
audited per decision, and nothing is delivered or written: a decision's fields are those
its redaction plan (``fields_shared``) grants. ``compare`` turns two such runs into counts,
per agreement, recipient and reason, of shares that would stop and start, and per recipient
of the fields it would gain or lose. Nothing in it names a child: events are counted, never
listed.

Consent governs by time, as in the worker: a consent record counts for events stamped after
it was recorded, so consent records are read from the beginning of ``accord.consent`` and
merged into the ingress by their Kafka timestamps. Events depend on one another only as
copies of one event id (every copy after the one decided is a replay), so ``--processes N``
splits the events by their id (never the consent records, which every process reads in
full) and merges what comes back.
"""

from __future__ import annotations

import os
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path

from pydantic import SecretStr

from broker.audit import AuditKind, ChainWriter, KeystoreAuditSigner
from broker.config import EnvelopeSettings
from broker.kafka import KafkaClients, Retained, stop_quietly, translated
from broker.keys import FileKeyStore
from broker.pipeline._access import access_chain
from broker.pipeline._consent import consent_chain
from broker.pipeline._effects import Audit, Effect, Publish
from broker.pipeline._ingress import Decide, ingress_chain, spend
from broker.pipeline._processor import build_services, unreadable
from broker.pipeline._services import Services
from broker.pipeline._stages import Stage, Step, Verdict, Work, forward, run_chain
from broker.pipeline._state import WorkerState
from broker.policy import Decision, Policy, Unversioned, load_bundle
from broker.principals import Principal
from broker.provision import WORKER_TRANSACTIONAL_ID
from broker.topics import ACCESS, AUDIT, CONSENT, party_of_ingress

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
    """One candidate recipient's decision, as much of it as an impact report compares: what
    a recipient would see is its fields and also whose they are and in what form."""

    shares: bool
    outcome: str
    reason: str | None
    agreement: str | None
    fields: frozenset[str]
    roles: tuple[tuple[str, int], ...] = ()  # how many people of each role the view holds
    transforms: tuple[tuple[str, str], ...] = ()  # field -> how it is coarsened
    scopes: tuple[str, ...] = ()  # per-person scopes, when people get different fields

    @classmethod
    def of(cls, d: Decision) -> Decided:
        return cls(
            d.shares, d.outcome, d.reason, d.agreement_id, frozenset(d.fields_shared),
            tuple(sorted(d.subject_roles.items())), tuple(sorted(d.transforms.items())),
            tuple(sorted(s.model_dump_json() for s in d.subject_scopes)),
        )  # fmt: skip


def view_changes(before: Decided, after: Decided) -> list[str]:
    """How a share that stays a share changes beyond its field names, in words that name
    roles, fields, transforms and agreements only."""
    out = []
    if before.outcome != after.outcome:
        out.append(f"outcome {before.outcome} -> {after.outcome}")
    if before.agreement != after.agreement:
        out.append(f"agreement {before.agreement} -> {after.agreement}")
    was, now = dict(before.roles), dict(after.roles)
    out += [f"people shared: {role} {was.get(role, 0)} -> {now.get(role, 0)}"
            for role in sorted(set(was) | set(now)) if was.get(role) != now.get(role)]  # fmt: skip
    was_t, now_t = dict(before.transforms), dict(after.transforms)
    out += [f"{name}: {was_t.get(name, 'as is')} -> {now_t.get(name, 'as is')}"
            for name in sorted(set(was_t) | set(now_t))
            if was_t.get(name) != now_t.get(name)]  # fmt: skip
    if before.scopes != after.scopes:
        out.append("per-person scopes changed")
    return out


def redecide(
    policies: Sequence[Policy],
    records: Iterable[Retained],
    *,
    keys: FileKeyStore,
    envelope: EnvelopeSettings,
    progress: Callable[[int], None] | None = None,
    not_compared: Counter[str] | None = None,
) -> list[dict[Key, Decided]]:
    """Every decision each of ``policies`` makes on ``records`` (taken in the order given);
    ``progress`` hears of the records taken, 200 at a time and the rest at the end;
    ``not_compared`` counts event records decided for no one, by why (``_Redecider.take``)."""
    each = _Redecider(policies, keys=keys, envelope=envelope)
    out: list[dict[Key, Decided]] = [{} for _ in policies]
    n = 0
    for n, rec in enumerate(records, 1):
        for found, decisions in zip(out, each.take(rec), strict=True):
            for d in decisions:
                found[(str(d.event_id), d.recipient)] = Decided.of(d)
        if progress is not None and n % 200 == 0:
            progress(200)
    if progress is not None and n % 200:
        progress(n % 200)  # the bar ends at its total
    if not_compared is not None:
        not_compared.update(each.not_compared)
    return out


class _Decisions:
    """``decide`` without its audit records; the event's id spent, as there."""

    name = "decide"

    def __init__(self, decide: Decide) -> None:
        self._decide = decide

    def __call__(self, work: Work) -> Step:
        # The policy's decisions, not the keystore's: a draft that shares with a party given
        # no keys yet (a new school) shares, and is reported so.
        work.decisions = self._decide.decisions(work, check_keys=False)
        return forward(spend(work))


class _Redecider:
    """The worker's chains cut where the bundle starts to matter: the stages before the cut
    run once per record, those after once per bundle, each bundle with a state of its own."""

    def __init__(
        self, policies: Sequence[Policy], *, keys: FileKeyStore, envelope: EnvelopeSettings
    ) -> None:
        self._now = datetime.now(UTC)
        linkage_key = keys.linkage_key()

        def services(policy: Policy) -> Services:
            return build_services(policy=policy, keys=keys, linkage_key=linkage_key,
                                  state=WorkerState(), clock=lambda: self._now,
                                  envelope=envelope)  # fmt: skip

        # ``once`` opens against a state nothing changes, so it never meets a replay: whether
        # an id was spent before is the one part of opening that can differ by bundle (a
        # bundle that does not know a sender never decides its records), so ``_once`` asks
        # each bundle's own state.
        once = services(policies[0])
        self._each = [services(p) for p in policies]
        _, open_, validate, link, _, _ = ingress_chain(once)
        self._event_once: tuple[Stage, ...] = (open_, validate, link)
        self._route: list[Stage] = []
        self._decide: list[Stage] = []
        for s in self._each:
            route, _, _, _, decide, _ = ingress_chain(s)  # never deliver: nothing is sealed
            self._route.append(route)
            self._decide.append(_Decisions(decide))
        self._consent_once: tuple[Stage, ...] = consent_chain(once)[:2]  # open, parse
        self._consent_each = [consent_chain(s)[2:] for s in self._each]
        self._access_once: tuple[Stage, ...] = access_chain(once)
        self.not_compared: Counter[str] = Counter()  # (``take``)
        self._stopped = ""  # why ``_once``'s stages stopped, when they did

    def take(self, rec: Retained) -> list[list[Decision]]:
        """Each bundle's decisions on ``rec`` (none for a record that is not an event, or
        that its chain stops under that bundle).

        An event record that no bundle decides anyone for is counted in ``not_compared`` by
        why: the worker's quarantine reason (``replay`` for a copy of an id already decided),
        or ``no-candidate`` (decided, but no clause sends it to anyone); ``a/b`` when the
        bundles differ, in the order of ``policies``."""
        decided: list[list[Decision]] = [[] for _ in self._each]
        self._now = at = datetime.fromtimestamp(rec.timestamp_ms / 1000, UTC)
        event = party_of_ingress(rec.topic) is not None
        if (bad := unreadable(rec.value, rec.headers)) is not None or rec.value is None:
            if event:  # quarantined whatever the bundle, before any chain
                self.not_compared[bad or "malformed"] += 1
            return decided
        clean = [(k, v) for k, v in rec.headers if v is not None]
        work = Work(rec.topic, rec.partition, rec.offset, rec.value, clean, at)
        everyone = range(len(self._each))
        if event:
            why = ["unknown-sender" for _ in everyone]
            routed = [i for i in everyone if _forwards(self._route[i], work)]
            fresh = self._once(self._event_once, work, routed) if routed else []
            for i in routed:
                why[i] = self._stopped or "replay"  # the stages forwarded: no fresh id
            for i in fresh:
                outcome = run_chain((self._decide[i],), work)
                if outcome.verdict is Verdict.FORWARD:
                    self._apply(i, outcome.effects)  # the id spent under this bundle
                    decided[i] = work.decisions
                why[i] = "no-candidate"
            if not any(decided):
                self.not_compared["/".join(dict.fromkeys(why))] += 1
        elif rec.topic == CONSENT:
            for i in self._once(self._consent_once, work, everyone):
                self._apply(i, run_chain(self._consent_each[i], work).effects)
        elif rec.topic == ACCESS:
            self._once(self._access_once, work, everyone)
        return decided

    def _once(self, stages: Sequence[Stage], work: Work, among: Iterable[int]) -> list[int]:
        """Run ``stages`` (the first opens the envelope) once; if they all forwarded, give
        each bundle of ``among`` for which the record is no replay what they changed, and
        return those bundles."""
        outcome = run_chain(stages, work)
        self._stopped = ""
        if outcome.verdict is not Verdict.FORWARD or work.opened is None:
            self._stopped = outcome.reason or "quarantined"
            return []  # quarantined under every bundle, its id spent under none
        # The envelope's last check (broker.envelope._open), as the worker's replay guard
        # makes it, against the bundle's own state.
        fresh = [i for i in among if not self._each[i].state.seen(work.opened.event_id)]
        for i in fresh:
            self._apply(i, outcome.effects)
        return fresh

    def _apply(self, i: int, effects: Iterable[Effect]) -> None:
        """The state changes among ``effects``, to bundle ``i``'s state (as the ``Outbox``
        would, without the audit chain or the changelog)."""
        state = self._each[i].state
        for e in effects:
            if not isinstance(e, Audit | Publish):
                state.change(e)


def _forwards(stage: Stage, work: Work) -> bool:
    return run_chain((stage,), work).verdict is Verdict.FORWARD


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
    #: recipient -> what else about a share changes (``view_changes``) -> events
    views: dict[str, dict[str, int]] = field(default_factory=dict)
    since: datetime | None = None  # the run's --since
    read: int = 0  # ingress records read, decided or not
    #: ingress records no bundle decided anyone for, by why (``_Redecider.take``)
    not_compared: dict[str, int] = field(default_factory=dict)
    #: agreements changed without a new version (``changed_without_new_version``)
    unversioned: tuple[Unversioned, ...] = ()

    @property
    def nothing_compared(self) -> bool:
        """No decision under either bundle: the run says nothing about the new bundle, and
        must never read as "no decision would change"."""
        return self.decisions == 0

    def not_compared_said(self) -> str:
        """How many event records were read, and why those that were not compared were not,
        in one line: reasons and counts only."""
        since = f" since {self.since.isoformat()}" if self.since is not None else ""
        skipped = sum(self.not_compared.values())
        if not skipped:
            return f"{self.read} event record(s) read{since}, every one decided"
        why = ", ".join(f"{reason} {n}" for reason, n in self.not_compared.items())
        return (f"{self.read} event record(s) read{since}; {skipped} decided for no one under "
                f"either bundle, so not compared: {why}")  # fmt: skip

    def nothing_said(self) -> str:
        """Why nothing was compared, in one line."""
        since = f" since {self.since.isoformat()}" if self.since is not None else ""
        if self.read == 0:
            return f"no retained events{since}: nothing was compared"
        return (f"{self.read} retained event record(s){since}, none decided under either "
                "bundle: nothing was compared")  # fmt: skip

    def as_json(self) -> dict[str, object]:
        return {
            "current_version": self.current_version,
            "new_version": self.new_version,
            "since": self.since.isoformat() if self.since is not None else None,
            "events_read": self.read,
            "events_not_compared": self.not_compared,
            "nothing_compared": self.nothing_compared,
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
            "views_changed": self.views,
            "unversioned_agreements": [u.as_json() for u in self.unversioned],
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
    views: dict[str, Counter[str]] = {}
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
        elif before.shares and after.shares and before != after:
            for name in after.fields - before.fields:
                gained.setdefault(recipient, Counter())[name] += 1
            for name in before.fields - after.fields:
                lost.setdefault(recipient, Counter())[name] += 1
            for change in view_changes(before, after):
                views.setdefault(recipient, Counter())[change] += 1
        else:
            impact.unchanged += 1
    impact.rows = [ImpactRow(c, a, r, why, n) for (c, a, r, why), n in sorted(moves.items())]
    impact.gained = {r: dict(sorted(c.items())) for r, c in sorted(gained.items())}
    impact.lost = {r: dict(sorted(c.items())) for r, c in sorted(lost.items())}
    impact.views = {r: dict(sorted(c.items())) for r, c in sorted(views.items())}
    return impact


# -- both bundles, in one process or several ----------------------------------------------


def in_order(records: Iterable[Retained]) -> list[Retained]:
    """The order a worker would meet them in, as near as the topics say: by timestamp."""
    return sorted(records, key=lambda r: (r.timestamp_ms, r.topic, r.partition, r.offset))


def _shards(records: Sequence[Retained], n: int) -> list[list[Retained]]:
    """``n`` runs: every consent record in each, the events dealt out between them by their
    key (an event's id), so that every copy of one event, a re-sent one too, is in the same
    run, in time order: the worker decides the first valid copy and refuses later ones as
    replays."""
    consents = [r for r in records if r.topic == CONSENT]
    shards: list[list[Retained]] = [list(consents) for _ in range(n)]
    for r in records:
        if r.topic != CONSENT:
            shards[zlib.crc32(r.key or b"") % n].append(r)
    return [in_order(shard) for shard in shards]


@dataclass(frozen=True)
class _Job:
    current: Path
    new: Path
    keystore: Path
    passphrase: str | None
    envelope: EnvelopeSettings
    records: list[Retained]


def _run(job: _Job) -> tuple[dict[Key, Decided], dict[Key, Decided], Counter[str]]:
    passphrase = SecretStr(job.passphrase) if job.passphrase is not None else None
    keys = FileKeyStore(job.keystore, passphrase)
    bundles = [load_bundle(job.current), load_bundle(job.new)]
    skipped: Counter[str] = Counter()
    before, after = redecide(bundles, job.records, keys=keys, envelope=job.envelope,
                             not_compared=skipped)  # fmt: skip
    return before, after, skipped


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
    not_compared: Counter[str] | None = None,
) -> tuple[dict[Key, Decided], dict[Key, Decided]]:
    """``records`` decided under the bundles in ``current`` and ``new``: in this process,
    or split between ``processes`` (each loads the keystore and both bundles itself).
    ``progress`` hears of each record once, so its sum is ``len(records)``; ``not_compared``
    counts the event records decided for no one (``redecide``)."""
    secret = passphrase.get_secret_value() if passphrase is not None else None
    if processes <= 1:
        keys = FileKeyStore(keystore, passphrase)
        bundles = [load_bundle(current), load_bundle(new)]
        runs = redecide(bundles, in_order(records), keys=keys, envelope=envelope,
                        progress=progress, not_compared=not_compared)  # fmt: skip
        return runs[0], runs[1]
    jobs = [
        _Job(current, new, keystore, secret, envelope, shard)
        for shard in _shards(records, processes)
    ]
    before: dict[Key, Decided] = {}
    after: dict[Key, Decided] = {}
    # Every run decides every consent record, but each counts once towards ``records``:
    # with the first run back, and otherwise a run's events alone.
    consents = sum(1 for r in records if r.topic == CONSENT)
    # spawn, not fork: the caller may hold an event loop and Kafka clients' threads.
    with ProcessPoolExecutor(min(processes, os.cpu_count() or 1, len(jobs)),
                             mp_context=get_context("spawn")) as pool:  # fmt: skip
        for i, (job, (b, a, skipped)) in enumerate(zip(jobs, pool.map(_run, jobs), strict=True)):
            before.update(b)
            after.update(a)
            if not_compared is not None:
                not_compared.update(skipped)  # events are in one run each: counted once
            if progress is not None:
                progress(len(job.records) - (consents if i else 0))
    return before, after


# -- the audit record of a run ------------------------------------------------------------


async def record_impact(kafka: KafkaClients, keys: FileKeyStore, impact: Impact, *, by: str) -> str:
    """Write the run's ``policy_impact`` record, signed, on a chain of its own
    (``worker:impact-<id>``); return the chain. Counts, versions, party ids and who ran it
    (``by``, as ``officer``: the login name, as ``accord audit verify`` records its runs)
    only: nothing about a child.

    A chain per run, not one shared chain: the run signs as the worker (it opens the
    worker's records with the worker's keys, and the indexer takes a ``policy_impact`` only
    from a worker chain), but the running worker's chains are its own, and two runs at once
    appending to one chain would fork it. A chain of its own needs no head read first and
    can fork with nothing."""
    chain = Principal.WORKER.chain(f"impact-{uuid.uuid4().hex[:12]}")
    writer = ChainWriter(chain, clock=lambda: datetime.now(UTC))
    data = impact.as_json()
    data["officer"] = by
    records = [
        writer.append(AuditKind.POLICY_IMPACT, data=data),
        writer.checkpoint(KeystoreAuditSigner(keys, Principal.WORKER)),
    ]
    # One transaction, as every other writer's records and checkpoint: the indexer refuses
    # a record still unsigned once it has read its partition to the end of what is
    # committed, so a checkpoint sent after its record could arrive after such a refusal
    # and find its chain's history missing. The id is the run's own, under the worker's
    # granted prefix (no worker task is named ``impact-…``).
    producer = kafka.transactional_producer(
        f"{WORKER_TRANSACTIONAL_ID}.{chain.split(':', 1)[1]}", client_id="accord-policy-impact"
    )
    try:
        async with translated(f"writing to {AUDIT} at {kafka.bootstrap}"):
            await producer.start()
            async with producer.transaction():
                for rec in records:
                    await producer.send(AUDIT, rec.to_bytes(), key=chain.encode())
    finally:
        await stop_quietly(producer)
    return chain
