"""The retained inputs re-decided under two bundles (``accord policy impact``'s first half).

``redecide`` takes records exactly as the worker would, through the worker's own stages,
with a fresh state per bundle and a clock that reads each record's own time, and keeps only
the decisions. What does not depend on the bundle (opening, validating, linking a contact
event; opening and parsing a consent record) is done once per record; what does (routing,
deciding, authorising consent) once per bundle. A consent record is filed, under every
bundle, when the first bundle (the one in force) authorised it, as the worker filed it
before any new bundle came into force; each decision then counts only the filed records its
own bundle accepts (``Policy.decide``). Nothing is redacted, sealed or
audited per decision, and nothing is delivered or written: a decision's fields are those
its redaction plan (``fields_shared``) grants.

A record whose key is missing or not its event id, or that sits on a partition its key
did not hash to under any count its topic can have had when it was written, is refused as
the worker refuses it (``unkeyed``, ``wrong-partition``; ``_impact_placement`` says which
counts those are, from the records read): only then is every copy of an event id that is
decided at all keyed by that id, and so in the one process ``redecide_both`` gives that id.
Ids are spent per topic (one sender's), as the worker keeps them per input partition:
another sender's event under the same id is its own event, decided too. A re-send under an
id already decided, on another partition its key hashed to under a count of its day, is
counted ``replay`` here, where the worker refuses it as misplaced (or, across a growth of
the topic, decides it again).
"""

from __future__ import annotations

import os
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path

from pydantic import SecretStr

from broker.config import EnvelopeSettings
from broker.kafka import Retained
from broker.keys import FileKeyStore
from broker.pipeline._access import access_chain
from broker.pipeline._consent import consent_chain
from broker.pipeline._effects import Audit, Effect, MarkProcessed, Publish
from broker.pipeline._impact_placement import FirstStamps, Keyed, Placements, first_stamps
from broker.pipeline._ingress import Decide, ingress_chain, spend
from broker.pipeline._processor import build_services, unreadable
from broker.pipeline._services import Services
from broker.pipeline._stages import Stage, Step, Verdict, Work, forward, run_chain
from broker.pipeline._state import WorkerState
from broker.policy import Decision, Policy, load_bundle
from broker.topics import ACCESS, CONSENT, party_of_ingress

__all__ = [
    "COUNTS",
    "ConsentTaken",
    "Decided",
    "Key",
    "Tally",
    "in_order",
    "redecide",
    "redecide_both",
]

#: (topic, event id, recipient): two senders may use one id, and the worker decides both
Key = tuple[str, str, str]


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


#: A consent record as each bundle took it: its recorder (a party id), its state, and per
#: bundle ``COUNTS`` or why it counts for nothing there (the refusal, or ``replay``)
ConsentTaken = tuple[str, str, tuple[str, ...]]
COUNTS = "counts"


@dataclass
class Tally:
    """What became of the event records taken: ``compared``, those some bundle decided
    someone for, and the rest in ``not_compared`` by why (``_Redecider.take``). Every event
    record is counted once, in one or the other. ``consents``: the consent records opened
    and parsed, counted by how each bundle took them (``ConsentTaken``): party ids, states
    and reasons, never whom a record is about."""

    compared: int = 0
    not_compared: Counter[str] = field(default_factory=Counter)
    consents: Counter[ConsentTaken] = field(default_factory=Counter)

    def add(self, other: Tally) -> None:
        self.compared += other.compared
        self.not_compared.update(other.not_compared)
        self.consents.update(other.consents)

    def reasons(self) -> dict[str, int]:
        """``not_compared``, most first, then by name: the same however many processes."""
        return dict(sorted(self.not_compared.items(), key=lambda kv: (-kv[1], kv[0])))


def redecide(
    policies: Sequence[Policy],
    records: Iterable[Retained],
    *,
    keys: FileKeyStore,
    envelope: EnvelopeSettings,
    progress: Callable[[int], None] | None = None,
    tally: Tally | None = None,
    partitions: Mapping[str, int] | None = None,
    first: Mapping[tuple[str, int], int] | None = None,
) -> list[dict[Key, Decided]]:
    """Every decision each of ``policies`` makes on ``records`` (taken in the order given),
    with the consent records the first of them (the bundle in force) authorised filed;
    ``progress`` hears of the records taken, 200 at a time and the rest at the end;
    ``tally`` counts the event records compared and not (``Tally``). ``partitions``: each
    topic's partition count today; a record of a topic named there has its key and
    partition checked as the worker checks them (a topic not named is not checked: unit
    tests), its partition against each count the topic can have had when it was written,
    as ``first`` (``first_stamps`` of every record read; of ``records`` if not given) says
    (``_impact_placement``)."""
    if partitions and first is None:
        records = list(records)
        first = first_stamps(records, partitions)
    placements = Placements(partitions or {}, first or {})
    each = _Redecider(policies, keys=keys, envelope=envelope, placements=placements)
    out: list[dict[Key, Decided]] = [{} for _ in policies]
    n = 0
    for n, rec in enumerate(records, 1):
        taken = each.take(rec)
        for found, decisions in zip(out, taken, strict=True):
            for d in decisions:
                found[(rec.topic, str(d.event_id), d.recipient)] = Decided.of(d)
        _refused_where_decided(out, taken, each.refused, rec.topic)
        if progress is not None and n % 200 == 0:
            progress(200)
    if progress is not None and n % 200:
        progress(n % 200)  # the bar ends at its total
    if tally is not None:
        tally.add(each.tally)
    return out


def _refused_where_decided(
    out: list[dict[Key, Decided]],
    taken: list[list[Decision]],
    refused: Sequence[str | None],
    topic: str,
) -> None:
    """A recipient some bundle decided for an event that another bundle refused before
    deciding (a sender it does not know, as ``unknown-sender``; a replay; a stage that
    raised) is not shared under that other bundle, for the worker's reason: not "not a
    candidate", which would read as considered and passed over. A new sender's events are
    refused by today's worker, so under the bundle in force they are no shares. Only where
    that bundle holds no decision for it yet: an earlier copy it decided stands."""
    reached = {(str(d.event_id), d.recipient) for decisions in taken for d in decisions}
    for found, why in zip(out, refused, strict=True):
        if why is None:
            continue
        for event_id, recipient in reached:
            found.setdefault((topic, event_id, recipient),
                             Decided(False, "not_shared", why, None, frozenset()))  # fmt: skip


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
        self,
        policies: Sequence[Policy],
        *,
        keys: FileKeyStore,
        envelope: EnvelopeSettings,
        placements: Placements,
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
        # each bundle's own spent ids.
        once = services(policies[0])
        self._each = [services(p) for p in policies]
        _, open_, validate, link, _, _ = ingress_chain(once)
        keyed = Keyed(placements)
        self._event_once: tuple[Stage, ...] = (open_, keyed, validate, link)
        self._route: list[Stage] = []
        self._decide: list[Stage] = []
        for s in self._each:
            route, _, _, _, decide, _ = ingress_chain(s)  # never deliver: nothing is sealed
            self._route.append(route)
            self._decide.append(_Decisions(decide))
        open_consent, parse = consent_chain(once)[:2]
        self._consent_once: tuple[Stage, ...] = (open_consent, keyed, parse)
        self._consent_each = [consent_chain(s)[2:] for s in self._each]
        access = access_chain(once)
        self._access_once: tuple[Stage, ...] = (access[0], keyed, *access[1:])
        # The ids each bundle spent, per topic (the worker's are per input partition).
        self._spent: list[set[tuple[str, str]]] = [set() for _ in self._each]
        self.tally = Tally()  # (``take``)
        self._stopped = ""  # why ``_once``'s stages stopped, when they did
        #: per bundle, why it refused the last event record taken before deciding it (the
        #: worker's quarantine reason), or None: decided, or no event record
        self.refused: list[str | None] = [None for _ in self._each]

    def take(self, rec: Retained) -> list[list[Decision]]:
        """Each bundle's decisions on ``rec`` (none for a record that is not an event, or
        that its chain stops under that bundle).

        An event record some bundle decides someone for is counted in ``tally.compared``;
        any other in ``tally.not_compared`` by why: the worker's quarantine reason
        (``replay`` for a copy of an id already decided, ``unkeyed`` or ``wrong-partition``
        for one the worker would refuse by its key or partition), or ``no-candidate``
        (decided, but no clause sends it to anyone); ``a/b`` when the bundles differ, in the
        order of ``policies``."""
        decided: list[list[Decision]] = [[] for _ in self._each]
        self.refused = [None for _ in self._each]
        self._now = at = datetime.fromtimestamp(rec.timestamp_ms / 1000, UTC)
        event = party_of_ingress(rec.topic) is not None
        if (bad := unreadable(rec.value, rec.headers)) is not None or rec.value is None:
            if event:  # quarantined whatever the bundle, before any chain
                self.tally.not_compared[bad or "malformed"] += 1
            return decided
        clean = [(k, v) for k, v in rec.headers if v is not None]
        # With its key, as the worker's loop gives it: a copy re-sent under another key, or
        # none, is refused here as there (``_Keyed``), never decided as new in another
        # process (``_shards`` deals records out by key).
        work = Work(rec.topic, rec.partition, rec.offset, rec.value, clean, at, rec.key)
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
                    self._apply(i, work, outcome.effects)  # the id spent under this bundle
                    decided[i] = work.decisions
                    why[i] = "no-candidate"
                else:  # the worker's reason (``stage-failed`` if Decide raised)
                    why[i] = outcome.reason or "quarantined"
            if any(decided):
                self.tally.compared += 1
                self.refused = [None if decided[i] or why[i] == "no-candidate" else why[i]
                                for i in everyone]  # fmt: skip
            else:
                self.tally.not_compared["/".join(dict.fromkeys(why))] += 1
        elif rec.topic == CONSENT:
            self._consent(work)
        elif rec.topic == ACCESS:
            self._once(self._access_once, work, everyone)
        return decided

    def _consent(self, work: Work) -> None:
        """File a consent record, under every bundle's state, exactly when the bundle in
        force (the first) authorised it on arrival, and count how each bundle would take it
        (``tally.consents``).

        The worker checks a record against the bundle in force when it arrives and files
        only what that bundle accepts (``Authorise``); a new bundle put in force later
        inherits those records, each checked again at every decision (``Policy.decide``
        drops those ``consent_refusal`` refuses), and never sees the ones refused: they
        count only if recorded again. So a filed record is scored under another bundle as
        its decisions check it, against its recorder's authority (its words are not read
        again: a withdrawal naming a party that bundle drops is no ``unknown-recipient``
        there), and a refused one as that bundle would have taken it on arrival; either way
        counted, never filed."""
        took = ["replay" for _ in self._each]  # counts under no bundle that spent its id
        fresh = self._once(self._consent_once, work, range(len(self._each)))
        in_force = run_chain(self._consent_each[0], work) if 0 in fresh else None
        filed = in_force is not None and in_force.verdict is Verdict.FORWARD
        for i in fresh:
            if filed:  # as filed (a withdrawal's known part): its words are not read again
                assert work.consent is not None  # noqa: S101  # ParseConsent forwarded
                refused = self._each[i].policy.consent_refusal(work.consent)
                took[i] = COUNTS if refused is None else refused
                continue
            # Authorise drops a record outside its recorder's authority, or in words this
            # bundle does not know: it then counts for no decision there, a withdrawal as
            # much as a grant.
            outcome = in_force if i == 0 else run_chain(self._consent_each[i], work)
            assert outcome is not None  # noqa: S101  # 0 in fresh: run above
            forwarded = outcome.verdict is Verdict.FORWARD
            took[i] = COUNTS if forwarded else outcome.reason or "quarantined"
        if in_force is not None:
            for i in fresh:  # filed (and the id spent) as the worker filed it
                self._apply(i, work, in_force.effects)
        if (record := work.consent) is not None:  # opened and parsed: the same under all
            self.tally.consents[record.recorded_by, record.state, tuple(took)] += 1

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
        # makes it, against the ids the bundle spent on this topic.
        spent = (work.topic, work.opened.event_id)
        fresh = [i for i in among if spent not in self._spent[i]]
        for i in fresh:
            self._apply(i, work, outcome.effects)
        return fresh

    def _apply(self, i: int, work: Work, effects: Iterable[Effect]) -> None:
        """The state changes among ``effects`` (of ``work``), to bundle ``i``'s state (as the
        ``Outbox`` would, without the audit chain or the changelog); an id spent, on its
        topic alone."""
        state = self._each[i].state
        for e in effects:
            if isinstance(e, MarkProcessed):
                self._spent[i].add((work.topic, e.event_id))
            elif not isinstance(e, Audit | Publish):
                state.change(e)


def _forwards(stage: Stage, work: Work) -> bool:
    return run_chain((stage,), work).verdict is Verdict.FORWARD


# -- both bundles, in one process or several ----------------------------------------------


def in_order(records: Iterable[Retained]) -> list[Retained]:
    """The order a worker would meet them in, as near as the topics say: by timestamp."""
    return sorted(records, key=lambda r: (r.timestamp_ms, r.topic, r.partition, r.offset))


def _shards(records: Sequence[Retained], n: int) -> list[list[Retained]]:
    """``n`` runs: every consent record in each, the events dealt out between them by their
    key, so that every copy of one event keyed by its id (the only copies the worker would
    decide, when ``redecide`` is given the partition counts), a re-sent one too, is in the
    same run, in time order: the worker decides the first valid copy and refuses later ones
    as replays."""
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
    partitions: dict[str, int] | None
    first: FirstStamps  # of every record read, not only this job's


def _run(job: _Job) -> tuple[dict[Key, Decided], dict[Key, Decided], Tally]:
    passphrase = SecretStr(job.passphrase) if job.passphrase is not None else None
    keys = FileKeyStore(job.keystore, passphrase)
    bundles = [load_bundle(job.current), load_bundle(job.new)]
    tally = Tally()
    before, after = redecide(bundles, job.records, keys=keys, envelope=job.envelope,
                             tally=tally, partitions=job.partitions,
                             first=job.first)  # fmt: skip
    return before, after, tally


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
    tally: Tally | None = None,
    partitions: Mapping[str, int] | None = None,
) -> tuple[dict[Key, Decided], dict[Key, Decided]]:
    """``records`` decided under the bundles in ``current`` and ``new``: in this process,
    or split between ``processes`` (each loads the keystore and both bundles itself).
    ``progress`` hears of each record once, so its sum is ``len(records)``; ``tally`` and
    ``partitions`` as in ``redecide``."""
    secret = passphrase.get_secret_value() if passphrase is not None else None
    if processes <= 1:
        keys = FileKeyStore(keystore, passphrase)
        bundles = [load_bundle(current), load_bundle(new)]
        runs = redecide(bundles, in_order(records), keys=keys, envelope=envelope,
                        progress=progress, tally=tally, partitions=partitions)  # fmt: skip
        return runs[0], runs[1]
    counts = dict(partitions) if partitions is not None else None
    first = first_stamps(records, counts or {})  # from them all: a shard sees less history
    jobs = [
        _Job(current, new, keystore, secret, envelope, shard, counts, first)
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
        for i, (job, (b, a, counted)) in enumerate(zip(jobs, pool.map(_run, jobs), strict=True)):
            before.update(b)
            after.update(a)
            if tally is not None:
                if i:  # every run took every consent record: the first one's count them
                    counted.consents.clear()
                tally.add(counted)  # events are in one run each: counted once
            if progress is not None:
                progress(len(job.records) - (consents if i else 0))
    return before, after
