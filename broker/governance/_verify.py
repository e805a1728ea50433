"""``accord audit verify``: prove the log intact, from the index or from the topic itself.

From the index, every chain is re-verified from the rows' canonical JSON bodies (the query
columns must still match their body), then checked for truncation against two references
kept apart from ``audit_records``: the newest *signed* checkpoint the indexer saw
(``chain_checkpoints``, unforgeable, only ever moving forward) and the indexed head
(``chain_heads``, unsigned, which also catches records appended to the table by hand).

Every passing verification of the configured index names, in its own signed record, the
heads it verified that no earlier record names (``_verify_vouch``): an index verified later
must still hold each of them, so a chain deleted from every table of the index fails as long
as a verification record naming it is left. A chain none names yet is not protected so: the
summary counts them.

From the topic, each chain is verified as Kafka holds it; given the index as well, the index's
checkpoints vouch that the topic has not lost what it once held, and the topic that the index
has not lost what it read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog

from broker._words import plural
from broker.audit import (
    AuditKind,
    AuditRecord,
    ChainReport,
    CheckpointVerifier,
    check_next,
    may_write,
    read_record,
    verify_chain,
    verify_truncation,
)
from broker.errors import AuditError, ChainBroken
from broker.governance._derived import Derived
from broker.governance._store import AuditStore, StoredRow, VerifyRun, derived_columns
from broker.governance._topic import TopicChains
from broker.governance._verify_vouch import (
    VerifiedHead,
    Vouch,
    Vouches,
    check_index_holds,
    past_vouch_words,
)
from broker.topics import AUDIT

log = structlog.get_logger("accord.audit")


@dataclass(frozen=True, slots=True)
class VerifySummary:
    source: str
    chains: int
    records: int
    signed_chains: int  # chains whose newest signed checkpoint was checked
    refused: int = 0  # topic messages no writer signed, left out
    unsigned: int = 0  # records after their chain's newest checkpoint, not vouched for yet
    #: Checkpoints that do not verify (a key since revoked) but a later valid one covers.
    unvouched: int = 0
    #: What a record of this run vouches for (``verified_heads``): each verified chain's
    #: newest signed checkpoint that no earlier verification record held vouches for
    #: already (a chain unchanged keeps its older vouch, and the record stays small).
    heads: Mapping[str, VerifiedHead] = field(default_factory=dict)
    #: Compared with an index: chains the topic has signed further than the index has read.
    behind: int | None = None
    #: Chains an earlier verification saw further than this index has read the topic.
    not_reached: int = 0
    #: From an index: chains no earlier signed verification vouches for, whose deletion
    #: the index alone would not show.
    not_vouched: int | None = None
    #: From an index: chains vouched for, holding records past the furthest head a vouch
    #: holds them to (cut back to it, the index alone would not show it).
    beyond_vouch: int = 0
    #: From an index: each chain's records newer than the furthest head a vouch holds it to
    #: (all of a chain none vouches for), and the newest vouching record the index holds.
    past_vouch: Mapping[str, int] = field(default_factory=dict)
    newest_vouch: Vouch | None = None

    def line(self) -> str:
        # The verdict in plain words first, then the rest. "Nothing is missing" only where a
        # signed verification vouches for every chain in full: records cut from the end of a
        # chain none vouches for (its head and checkpoint reference moved back with them), or
        # the whole chain, leave an index that verifies, and an IG lead reading "nothing is
        # missing" would not check it against Kafka.
        extra = ""
        if self.not_vouched is not None:  # from an index
            open_ = self.not_vouched + self.beyond_vouch
            if not self.chains:
                # Not "nothing is missing": an index emptied of every row looks just so.
                extra += (
                    ". The index holds no chain, so nothing in it shows what it should hold: "
                    "run 'accord audit verify --from-topic' (and --db) to check it against Kafka"
                )
            elif open_ and self.newest_vouch is not None and self.past_vouch:
                # The usual answer: no run vouches for its own record, so the newest records
                # are never vouched for; said with when the newest vouching run was.
                vouched = self.records - sum(self.past_vouch.values())
                extra += past_vouch_words(self.past_vouch, vouched, self.newest_vouch)
            elif open_:
                extra += (
                    ". Every chain in the index verifies as far as it goes; "
                    f"{plural(open_, 'chain')} {'is' if open_ == 1 else 'are'} not yet "
                    "vouched for by a signed verification, so records removed from "
                    f"{'its' if open_ == 1 else 'their'} end, or a whole chain, would not "
                    "show yet: run 'accord audit verify --from-topic' (and --db) to check "
                    f"{'it' if open_ == 1 else 'them'} against Kafka"
                )
                if self.not_vouched and self.beyond_vouch:
                    extra += (
                        f" ({self.not_vouched} that no verification vouches for, "
                        f"{self.beyond_vouch} with records past the newest head one does)"
                    )
            elif self.signed_chains < self.chains:
                unsigned = self.chains - self.signed_chains
                extra += (
                    ". Every chain in the index verifies as far as it goes; "
                    f"{plural(unsigned, 'chain')} {'has' if unsigned == 1 else 'have'} no "
                    "signed checkpoint kept apart in the index: run 'accord audit verify "
                    "--from-topic' (and --db) to check against Kafka"
                )
            else:
                extra += (
                    ". Every chain in the index verifies, and a signed verification vouches "
                    "for each: nothing is missing or altered"
                )
        if self.not_reached:
            extra += (
                f"; {plural(self.not_reached, 'chain')} an earlier verification saw further "
                "than this index has read the topic (not indexed yet)"
            )
        if self.behind is not None:
            extra += (
                "; the index holds everything the topic signed up to where it has read it"
                f" ({plural(self.behind, 'chain')} signed further than that: not indexed yet)"
            )
        if self.refused or self.unsigned:
            extra += (
                f"; left out: {plural(self.refused, 'message')} no writer signed, "
                f"{plural(self.unsigned, 'record')} awaiting their writer's checkpoint"
            )
        if self.unvouched:
            one = self.unvouched == 1
            extra += (
                f"; {plural(self.unvouched, 'checkpoint')} "
                f"{'vouches' if one else 'vouch'} for nothing ({'its' if one else 'their'} key "
                "does not verify now, revoked since?), a later valid checkpoint covers "
                f"{'it' if one else 'them'}"
            )
        return (
            f"audit log intact ({self.source}): {plural(self.records, 'record')} in "
            f"{plural(self.chains, 'chain')}, "
            f"{self.signed_chains} with a verified signed checkpoint{extra}"
        )


def _require_checkpoint(report: ChainReport) -> None:
    """A chain with no checkpoint proves nothing: anyone could have written it."""
    if report.records and report.last_checkpoint_seq is None:
        raise ChainBroken(
            0, "no checkpoint signed by the chain's writer: nothing in it is vouched for",
            chain=report.chain or None,
        )  # fmt: skip


def _records_of(chain: str, rows: Iterable[StoredRow]) -> Iterator[AuditRecord]:
    """Each row's record, after checking the row's columns still say what its body says."""
    for row in rows:
        try:
            rec = read_record(row.body)
        except ValueError:
            raise ChainBroken(row.seq, "stored body is not an audit record", chain=chain) from None
        if not may_write(rec.chain, rec.kind):
            # §6 rule 5: a fault whatever its hash and signature (the indexer never takes
            # one, so a row like this was written into the database by hand).
            raise ChainBroken(
                row.seq,
                f"a {rec.kind.value} record on a chain whose writer may not write it",
                chain=chain,
            )
        if rec.computed_hash() != rec.hash:
            # Before the columns: an edited body is tampering with the signed record itself,
            # and saying which column disagrees would name the symptom, not the fault.
            raise ChainBroken(row.seq, "record content does not match its hash", chain=chain)
        expected = derived_columns(rec)
        for name, value in expected.items():
            if getattr(row, name) != value:
                raise ChainBroken(
                    row.seq, f"column {name!r} does not match the record body", chain=chain
                )
        yield rec


def _check_reference(report: ChainReport, cp: AuditRecord | None, verifier: CheckpointVerifier,
                     records: dict[int, str]) -> bool:  # fmt: skip
    """Truncation and rollback against the chain's newest signed checkpoint, kept elsewhere."""
    if cp is None:
        return False
    chain = report.chain
    if cp.chain != chain:
        raise ChainBroken(cp.seq, "the checkpoint reference belongs to another chain", chain=chain)
    try:
        # The reference is itself a checkpoint record: its hash and signature must hold.
        check_next(cp, cp.seq, cp.prev_hash, verifier)
    except ChainBroken as exc:
        raise ChainBroken(exc.seq, f"checkpoint reference: {exc.what}", chain=chain) from None
    verify_truncation(report, cp.seq)
    if records.get(cp.seq) != cp.hash:
        raise ChainBroken(
            cp.seq, "record differs from the signed checkpoint reference (rewritten)", chain=chain
        )
    return True


def verify_store(store: AuditStore, verifier: CheckpointVerifier) -> VerifySummary:
    """Verify every chain in the index; raise :class:`ChainBroken` at the first bad record.

    Reads one snapshot, so an indexer running meanwhile cannot make it cry wolf.
    """
    with store.snapshot():
        return _verify_store(store, verifier)


def _verify_store(store: AuditStore, verifier: CheckpointVerifier) -> VerifySummary:
    heads = store.heads()
    total = signed = unvouched = 0
    chains = store.chains()
    derived = Derived()
    vouches = Vouches()
    held: dict[str, int] = {}
    verified: dict[str, VerifiedHead] = {}
    for chain in chains:
        head = heads.get(chain)
        if head is not None and head.broken_seq is not None:
            raise ChainBroken(
                head.broken_seq, f"the indexer found it broken: {head.error}", chain=chain
            )
        hashes: dict[int, str] = {}

        def remember(records: Iterator[AuditRecord], keep: dict[int, str]) -> Iterator[AuditRecord]:
            for rec in records:
                keep[rec.seq] = rec.hash
                derived.take(rec)
                vouches.take(rec)
                yield rec

        report = verify_chain(
            remember(_records_of(chain, store.rows(chain)), hashes), verifier, expect_chain=chain
        )
        _require_checkpoint(report)
        # The signed reference first: a chain cut short inside what a checkpoint kept apart
        # covers is truncation, whatever unsigned-looking tail the cut leaves behind.
        if _check_reference(report, store.latest_checkpoint(chain), verifier, hashes):
            signed += 1
        if report.last_checkpoint_seq is not None and report.head_seq > report.last_checkpoint_seq:
            # The indexer takes a record only once its writer's checkpoint covers it, and
            # every writer's transaction ends with one: a record past the newest checkpoint
            # was put there by someone without the key.
            raise ChainBroken(
                report.last_checkpoint_seq + 1,
                "record after the chain's newest signed checkpoint: no writer signed it",
                chain=chain,
            )
        if head is not None:
            # Unsigned, but catches a plain DELETE of the newest rows and rows added by hand.
            if report.head_seq < head.seq:
                raise ChainBroken(
                    report.head_seq + 1,
                    f"chain ends at seq {report.head_seq} but the indexer reached {head.seq}",
                    chain=chain,
                )
            if report.head_seq > head.seq:
                raise ChainBroken(
                    head.seq + 1, "record beyond the indexed head (inserted)", chain=chain
                )
        total += report.records
        unvouched += len(report.unvouched)
        if report.records:
            held[chain] = report.head_seq
        if (cp := report.last_checkpoint_seq) is not None:
            verified[chain] = VerifiedHead(cp, hashes[cp], store.position_of(chain, cp))
    # After every chain: a record vouching for a chain may be in a chain verified later.
    read_to = _read_to(store, vouches.partitions())
    not_reached = vouches.check(store, held, read_to)
    derived.check(store.derived_rows())
    fresh = {c: h for c, h in verified.items() if not vouches.vouched(c, h.seq, h.hash, read_to)}
    # A chain holds seq 0..head: those past the furthest vouch (-1: none) are its newest.
    past = {c: seq - vouches.furthest(c, read_to) for c, seq in held.items()}
    return VerifySummary(
        getattr(store, "backend", "index"), len(chains), total, signed, unvouched=unvouched,
        heads=fresh, not_reached=not_reached,
        not_vouched=sum(1 for c in chains if c not in vouches.heads),
        beyond_vouch=sum(1 for c, seq in held.items()
                         if c in vouches.heads and seq > vouches.furthest(c, read_to)),
        past_vouch={c: n for c, n in past.items() if n > 0},
        newest_vouch=vouches.newest(read_to),
    )  # fmt: skip


def _read_to(store: AuditStore, partitions: Iterable[int]) -> dict[int, int]:
    """How far the index has read each partition: its stored offset, or past the newest
    message it holds there if further (offsets set back do not hide rows deleted)."""
    read_to = dict(store.offsets(AUDIT))
    for part in partitions:
        newest = store.held_before(AUDIT, part, 2**62, 1)
        if newest:
            read_to[part] = max(read_to.get(part, 0), newest[0][0] + 1)
    return read_to


def verify_and_keep(
    store: AuditStore,
    verifier: CheckpointVerifier,
    *,
    by: str,
    via: str,
    clock: Callable[[], datetime],
    not_kept: Callable[[AuditError], None] | None = None,
) -> VerifySummary:
    """:func:`verify_store`, its result kept in the index (``last_verification``) so that a
    failure stays on the console until a later verification passes; ``ChainBroken`` raised
    once it is kept.

    The run's time is read once its snapshot is open: what it read includes everything
    indexed by then, so a run that opened an older snapshot is older, whenever it finishes
    (a slow pass must not clear a failure found in a newer snapshot meanwhile). A result the
    index cannot take (a role that may only read it) goes to ``not_kept``, else is logged:
    the answer itself stands.
    """
    failure: ChainBroken | None = None
    with store.snapshot():
        at = clock()
        try:
            summary = _verify_store(store, verifier)
        except ChainBroken as exc:
            failure = exc
    # Kept once the snapshot is closed: PostgreSQL's is a read-only transaction.
    if failure is not None:
        run = VerifyRun(at, by, via, ok=False, chain=failure.chain, seq=failure.seq,
                        problem=failure.what)  # fmt: skip
        _keep(store, run, not_kept)
        raise failure
    run = VerifyRun(at, by, via, ok=True, records=summary.records, chains=summary.chains)
    _keep(store, run, not_kept)
    return summary


def _keep(store: AuditStore, run: VerifyRun, not_kept: Callable[[AuditError], None] | None) -> None:
    try:
        store.keep_verification(run)
    except AuditError as exc:
        if not_kept is not None:
            not_kept(exc)
        else:
            log.warning("verify_result_not_kept", error=str(exc), ok=run.ok)


def verification_state(store: AuditStore, *, logged: Iterable[datetime | None] = ()) -> str:
    """The log's verification state as of now, for a SAR's header: what the index records of
    the last verification, and any chain the indexer found broken (chain names only).

    Said as what the index records: ``verify_runs`` is not evidence (anyone able to write to
    the index can write a row); the signed log and ``accord audit verify`` are. ``logged``:
    when the log recorded each entry listed; one after the verification's time is said to be
    not yet verified (one recorded before it but indexed after is not caught: the index
    keeps no time of indexing)."""
    broken = store.broken_chains()
    last = store.last_verification()
    parts = [f"the indexer found broken: {', '.join(broken)}"] if broken else []
    if last is None:
        parts.append("the index records no verification; run 'accord audit verify' before sending")
        return "; ".join(parts)
    at = f"{last.at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    if last.ok and last.records is not None and last.chains is not None:
        counted = f"{plural(last.records, 'record')} in {plural(last.chains, 'chain')}"
        found = f"intact, {counted} as indexed then"
    elif last.ok:  # Accord always counts what a pass read: this row was written by hand
        found = "intact, its counts not recorded"
    else:
        found = f"FAILED: {last.failure}"
    parts.append(f"the index records the last verification as {at} by {last.by}: {found}")
    if any(t is not None and t > last.at for t in logged):
        parts.append(f"entries after {at} not yet verified")
    return "; ".join(parts)


def signed_checkpoints(store: AuditStore) -> dict[str, AuditRecord]:
    """The newest signed checkpoint the index holds for each chain, read as one snapshot."""
    with store.snapshot():
        cps = {chain: store.latest_checkpoint(chain) for chain in store.chains()}
    return {chain: cp for chain, cp in cps.items() if cp is not None}


@dataclass(frozen=True, slots=True)
class IndexView:
    """What ``--from-topic --db`` compares the topic with: the index's signed checkpoints and
    how far it has read each partition of the topic."""

    checkpoints: dict[str, AuditRecord]
    read_to: dict[int, int]
    #: Each chain's newest indexed seq: where a chain without a checkpoint ends.
    heads: dict[str, int] = field(default_factory=dict)


def index_view(store: AuditStore, partitions: Iterable[int]) -> IndexView:
    """The index's newest signed checkpoints and read position of each of the topic's
    ``partitions`` (:func:`_read_to`), as one snapshot."""
    with store.snapshot():
        cps = {chain: store.latest_checkpoint(chain) for chain in store.chains()}
        read_to = _read_to(store, partitions)
        # Only chains without a checkpoint need it (a fault): where their records end, read
        # from the records, not the head row, which a cut left alone would overstate.
        heads = {c: _stored_end(store, c, h.seq)
                 for c, h in store.heads().items() if cps.get(c) is None}  # fmt: skip
    return IndexView({c: cp for c, cp in cps.items() if cp is not None}, read_to, heads)


def _stored_end(store: AuditStore, chain: str, head: int) -> int:
    """The last seq of ``chain`` the index holds, at most ``head``, found by halving (a chain
    cut back holds 0..n and nothing after); -1 if it holds not even seq 0."""
    lo, hi = -1, head + 1  # seq lo is held (or -1); seq hi is not (or past the head)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if store.stored_hash(chain, mid) is None:
            hi = mid
        else:
            lo = mid
    return lo


def verify_records(
    topic: TopicChains,
    verifier: CheckpointVerifier,
    *,
    reference: Mapping[str, AuditRecord] | None = None,
    source: str = "topic",
    index: IndexView | None = None,
) -> VerifySummary:
    """Verify the chains read from the topic (:func:`signed_chains`), that none is shorter
    than ``reference`` says it was, and that ``index`` (read before the topic) holds every
    chain the topic signed as far as the index has read the topic.

    ``reference`` is the newest signed checkpoint of each chain from elsewhere: the index's
    (:func:`signed_checkpoints`, read *before* the topic: the index trails the topic, so a
    checkpoint read afterwards may cover records the read never reached), or heads saved by an
    earlier verify. An emptied or shortened topic fails against it.
    """
    chains = topic.chains
    names = sorted(set(chains) | set(reference or ()))
    total = signed = unvouched = 0
    for chain in names:
        records = chains.get(chain, [])
        report = verify_chain(records, verifier, expect_chain=chain)
        _require_checkpoint(report)
        if report.last_checkpoint_seq is not None:
            signed += 1
        if reference is not None:
            hashes = {r.seq: r.hash for r in records}
            _check_reference(report, reference.get(chain), verifier, hashes)
        total += report.records
        unvouched += len(report.unvouched)
    behind = None
    if index is not None:
        behind = check_index_holds(topic, index.checkpoints, index.read_to, index.heads)
    return VerifySummary(
        source, len(names), total, signed, sum(topic.refused.values()), topic.unsigned, unvouched,
        behind=behind,
    )  # fmt: skip


def newest_checkpoints(topic: TopicChains) -> dict[str, AuditRecord]:
    """Each chain's newest checkpoint: signed heads to keep, and check a later read against."""
    out: dict[str, AuditRecord] = {}
    for chain, records in topic.chains.items():
        cps = [r for r in records if r.kind is AuditKind.CHECKPOINT]
        if cps:
            out[chain] = cps[-1]
    return out
