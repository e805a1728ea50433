"""The audit indexer's verification: each message read from ``accord.audit`` offered to its
chain, and the batch to commit built from what is taken and what is refused.

Only what a chain's writer signed is indexed (``_signed``): a record on a chain of a known
writer (``worker:*``, ``console:*``), of a kind that writer may write, waits until a
checkpoint signed by that writer's key covers it. Everything else (an undecodable message, a
foreign chain, a record that does not link, a fork nobody signed, a rewrite of indexed
history) is *refused*: kept in ``audit_refused`` with its position and why, reported, and never
allowed to break or fork a genuine chain. A chain breaks only on signed evidence (a checkpoint
that verifies but does not link to what is held): indexing that chain stops, ``chain_heads``
records where and why, and it is reported loudly; other chains carry on.

The stored offset of a partition never passes a record still waiting for its checkpoint, so
an indexer that restarts reads it again. A record waits only until its checkpoint must have
been read, had its writer signed it: every writer commits its checkpoint in the same
transaction as the records it covers, so a record read committed has its checkpoint below
the partition's high watermark as it stood when the record was read. Another writer's
transaction still open between the two holds the last stable offset below the checkpoint
(read_committed), so the indexer waits until its partition has been read to the last stable
offset *and* that offset has reached the watermark recorded with the record: every
transaction open then has ended (committed, aborted, or timed out by the broker, within the
producer's transaction timeout). A record still unsigned then was never signed, and is
refused (``not-signed-by-writer``) instead of holding the offset, and the unsigned alarm, for
ever. Refused is not lost: when a checkpoint that verifies does not link to what is held, and
``audit_refused`` holds records of that chain between the indexed head and the checkpoint
refused for a reason a later checkpoint can undo (``UNDONE_BY_A_LATER_CHECKPOINT``: never
signed as far as a run could tell, as on a quiet chain whose last checkpoint was signed by a
key revoked before a run read it, or not linking because their parent had been refused so),
the indexer reads exactly those offsets again, and the checkpoint covers them if its hash
links run through them; only if it still does not link is the chain broken. Records refused
so are kept in memory for the checkpoint within bounds (``REFUSED_HELD_PER_CHAIN``,
``REFUSED_HELD``); the oldest beyond them are read again like those of an earlier run. What
is read again for one checkpoint is bounded too (``REREAD_PER_SEQ``, ``REREAD_HELD``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace

import structlog

from broker._words import plural
from broker.audit import (
    GENESIS,
    AuditRecord,
    CheckpointVerifier,
    chain_writer,
    may_write,
    read_record,
)
from broker.errors import ChainBroken
from broker.governance._signed import (
    UNDONE_BY_A_LATER_CHECKPOINT,
    Offered,
    SignedTip,
    misplaced,
)
from broker.governance._store import (
    AuditStore,
    ChainHead,
    IndexBatch,
    IndexedRecord,
    RefusedMessage,
    message_digest,
)
from broker.topics import AUDIT

log = structlog.get_logger("accord.audit")

#: Records refused as never signed that all chains' tips keep in memory together (each at most
#: ``REFUSED_HELD_PER_CHAIN``): beyond it, those of the chains holding most go first.
REFUSED_HELD = 10_000

#: Refused records of one chain read again for one checkpoint that does not link: at most
#: ``REREAD_PER_SEQ`` at each seq between the head and it (the first in the topic; a genuine
#: chain has one), ``REREAD_HELD`` in all. Anyone able to write to the topic can add refused
#: records at any seq, and each one read again is held in memory until the checkpoint is
#: decided; a gap past the bound breaks the chain rather than exhaust the indexer.
REREAD_PER_SEQ = 10
REREAD_HELD = 10_000


#: What each reason a message is refused for means, as ``accord audit index`` says it.
#: ``conflicts-with-indexed`` is no forgery by itself: a writer whose chain went back (its
#: topic restored from a backup older than the index) writes it too.
REFUSED_MEANS = {
    "undecodable": "not an audit record",
    "foreign-chain": "on a chain no known writer keeps",
    "kind-not-allowed": "of a kind its chain's writer does not write",
    "wrong-key": "not keyed by its chain",
    "wrong-partition": "on another partition than its chain's",
    "bad-hash": "its content does not match its hash",
    "not-signed-by-writer": "no checkpoint of its writer's covered it: a fork, or never signed",
    "does-not-link": "links to nothing held of its chain",
    "bad-checkpoint": "a checkpoint that neither verifies nor links to anything held",
    "conflicts-with-indexed": (
        "a different record at a sequence number already indexed: history rewritten, or "
        "the topic restored from a backup older than the index (docs/deployment.md, Restore)"
    ),
}


@dataclass
class IndexSummary:
    indexed: int = 0
    duplicates: int = 0
    skipped_broken: int = 0
    breaks: list[ChainBroken] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)  # by reason

    def refusals(self) -> str:
        """One line: how many messages were kept out of the index, by reason and what it means."""
        why = "; ".join(
            f"{reason}: {n} ({REFUSED_MEANS.get(reason, 'see docs/governance.md')})"
            for reason, n in sorted(self.refused.items())
        )
        refused = plural(sum(self.refused.values()), "message")
        return f"refused {refused}, kept out of the index ({why})"


Position = tuple[int, int]  # partition, offset


class ChainTracker:
    """Verifies records one at a time against each chain's head; builds the batch to commit."""

    def __init__(
        self,
        store: AuditStore,
        verifier: CheckpointVerifier,
        *,
        topic: str = AUDIT,
        partitions: int | None = None,
    ) -> None:
        self._store = store
        #: The topic's partitions: a chain's records must be on its key's (``misplaced``).
        self.partitions = partitions
        self._verifier = verifier
        self.topic = topic
        self.summary = IndexSummary()
        self.heads: dict[str, ChainHead] = {}
        self.offsets: dict[int, int] = {}
        self._pending: dict[tuple[str, int], str] = {}
        self._tips: dict[str, SignedTip[Position]] = {}
        self._read: dict[int, int] = {}  # the offset after the last message offered
        # Each partition's high watermark when the batch being offered was fetched, and, for
        # each message offered, the one it was read under: its writer's checkpoint, if it
        # signed it, is below (the module's docstring).
        self._high: Mapping[int, int] = {}
        self._horizon: dict[Position, int] = {}
        #: Chains whose signed checkpoint does not link, and where the records of theirs
        #: refused as unsigned are: read them from the topic and ``restore`` them.
        self.wanted: dict[str, list[Position]] = {}
        # Read again this run (kept across ``sync`` until decided: ``_drop_restored``):
        # offered back to each new tip.
        self._restored: dict[str, list[tuple[AuditRecord, Position]]] = {}
        self._reread: set[Position] = set()
        self._before = self.summary
        self.sync()

    def sync(self) -> dict[int, int]:
        """Reload heads and ``topic``'s offsets as the index holds them now; return the offsets.

        One snapshot: heads read before another indexer's commit and offsets read after it
        would make every record in between look missing.
        """
        with self._store.snapshot():
            self.heads = self._store.heads()
            self.offsets = self._store.offsets(self.topic)
        self._pending = {}
        self._tips = {}  # what waited is read again from the stored offsets
        self._read = {}
        self._horizon = {}
        return dict(self.offsets)

    def new_batch(self, *, high: Mapping[int, int] | None = None) -> IndexBatch:
        """Start a batch; ``high``: each partition's high watermark after the fetch that
        brought its messages (None: unknown, as if every transaction had ended)."""
        self._pending = {}
        self._high = high or {}
        self._before = replace(
            self.summary, breaks=list(self.summary.breaks), refused=Counter(self.summary.refused)
        )
        return IndexBatch(self.topic, base_offsets=dict(self.offsets))

    @property
    def waiting(self) -> int:
        """Records read but not yet covered by their writer's checkpoint."""
        return sum(len(t.waiting) for t in self._tips.values())

    def held(self) -> list[AuditRecord]:
        """The records waiting for their writer's checkpoint."""
        return [rec for tip in self._tips.values() for rec, _ in tip.waiting]

    def expirable(self, ended: Mapping[int, int]) -> bool:
        """Whether a record waiting for its writer's checkpoint would be refused now."""
        return any(self._ended(w, ended) for tip in self._tips.values() for _, w in tip.waiting)

    def _ended(self, where: Position, ended: Mapping[int, int]) -> bool:
        """Whether the checkpoint of the record at ``where`` has been read, had its writer
        signed it: its partition is read to its last stable offset, and that offset has
        reached the high watermark the record was read under (every transaction open then
        has ended, the record's own among those before it)."""
        stable = ended.get(where[0])
        return stable is not None and self._horizon.get(where, 0) <= stable

    def commit(self, batch: IndexBatch, *, ended: Mapping[int, int] | None = None) -> bool:
        """Apply ``batch``; False if another indexer moved the index first, or if refused
        records are ``wanted`` again (either way reloaded: read on from ``offsets``).

        ``ended``: the partitions read to their end by now, each with its last stable
        offset; None means every partition this batch read from, with nothing open (a caller
        that offered all there is). What still waits there, read under a high watermark that
        offset has reached, was never signed by its writer: it is refused, and no longer
        holds the stored offset back.
        """
        if self.wanted:  # the batch is read again once they are restored
            self.summary = self._before
            self.sync()
            return False
        if ended is None:
            ended = dict.fromkeys(batch.offsets, 2**63 - 1)
        self._expire(batch, ended)
        for tip in self._tips.values():  # never store an offset past a record still waiting
            for _, (partition, offset) in tip.waiting:
                if partition in batch.offsets:
                    batch.offsets[partition] = min(batch.offsets[partition], offset)
        self._forget()
        if self._store.apply(batch):
            self.offsets.update(batch.offsets)
            self._drop_restored()
            return True
        self.summary = self._before
        self.sync()
        # Another indexer on the same index got there first (a console's own beside the
        # demo's, say): every batch, twice a second, so not at info where it buried the rest.
        log.debug("audit_index_moved", topic=self.topic)
        return False

    def _expire(self, batch: IndexBatch, ended: Mapping[int, int]) -> None:
        refused = [
            r for tip in self._tips.values() for r in tip.expire(lambda w: self._ended(w, ended))
        ]
        for r in refused:
            self._refuse(batch, r.where, None, r.reason, rec=r.record)
        for partition in {r.where[0] for r in refused}:
            if partition in self._read:  # an empty batch: move past them too
                batch.offsets[partition] = self._read[partition]

    def _forget(self) -> None:
        """Bound what the tips hold: the oldest refused records of the chains holding most go
        beyond ``REFUSED_HELD`` (recorded in ``audit_refused``, read again if a checkpoint
        needs them), and a tip holding nothing is dropped (rebuilt from its head if needed),
        so records on ever new chain names, never signed, cost no memory for long."""
        over = sum(tip.refused_held for tip in self._tips.values()) - REFUSED_HELD
        for tip in sorted(self._tips.values(), key=lambda t: t.refused_held, reverse=True):
            if over <= 0:
                break
            over -= tip.forget(over)
        self._tips = {chain: tip for chain, tip in self._tips.items() if tip.holds}
        held = {w for tip in self._tips.values() for _, w in tip.waiting}
        self._horizon = {w: h for w, h in self._horizon.items() if w in held}

    def _drop_restored(self) -> None:
        """Forget what was read again once it is decided: covered (the head is past it) or
        never to be (the chain broke). The rest waits for its checkpoint, still to be read."""
        for chain, held in list(self._restored.items()):
            head = self._head(chain)
            kept = [r for r in held if r[0].seq > head.seq] if head.broken_seq is None else []
            if kept:
                self._restored[chain] = kept
            else:
                del self._restored[chain]

    def offer(
        self,
        batch: IndexBatch,
        key: bytes | None,
        value: bytes | None,
        partition: int,
        offset: int,
    ) -> None:
        """Take one message from the topic; only records their writer signed enter ``batch``."""
        batch.offsets[partition] = self._read[partition] = offset + 1
        where = (partition, offset)
        self._horizon[where] = self._high.get(partition, 0)
        try:
            rec = read_record(value or b"")
        except ValueError:
            chain = key.decode("utf-8", "replace")[:200] if key else None
            self._refuse(batch, where, value, "undecodable", chain=chain)
            return
        if not may_write(rec.chain, rec.kind):
            reason = "foreign-chain" if chain_writer(rec.chain) is None else "kind-not-allowed"
            self._refuse(batch, where, value, reason, rec=rec)
            return
        if (placed := misplaced(key, rec.chain, partition, self.partitions)) is not None:
            self._refuse(batch, where, value, placed, rec=rec)
            return
        head = self._head(rec.chain)
        if self._skipped(head):
            return
        if rec.seq <= head.seq:
            stored = self._pending.get((rec.chain, rec.seq)) or self._store.stored_hash(
                rec.chain, rec.seq
            )
            if stored == rec.hash and rec.computed_hash() == rec.hash:
                self.summary.duplicates += 1
            else:  # someone rewriting signed history: refused, the chain stands
                self._refuse(batch, where, value, "conflicts-with-indexed", rec=rec)
            return
        tip = self._tips.get(rec.chain)
        if tip is None:
            tip = self._tips[rec.chain] = SignedTip(rec.chain, head.seq, head.hash, self._verifier)
            tip.restore(self._restored.get(rec.chain, ()))
        try:
            offered = tip.offer(rec, where)
        except ChainBroken as exc:
            if not self._want(head, rec):
                self._break(batch, head, exc)
            return
        self._take(batch, offered)

    def _skipped(self, head: ChainHead) -> bool:
        """A broken chain is indexed no further; one whose refused records are ``wanted``
        waits for them (this batch is dropped, and read again once they are restored)."""
        if head.broken_seq is not None:
            self.summary.skipped_broken += 1
        return head.broken_seq is not None or head.chain in self.wanted

    def _want(self, head: ChainHead, checkpoint: AuditRecord) -> bool:
        """Whether records of the chain refused for a reason a later checkpoint can undo
        (this run or an earlier one) may fill the gap before ``checkpoint``: then they are
        ``wanted``, once each per run."""
        found = self._store.refusals_of_chain(
            self.topic,
            head.chain,
            head.seq,
            checkpoint.seq,
            UNDONE_BY_A_LATER_CHECKPOINT,
            per_seq=REREAD_PER_SEQ,
            limit=REREAD_HELD,
        )
        fresh = [at for at in found if at not in self._reread]
        if fresh:
            self.wanted[head.chain] = fresh
        return bool(fresh)

    def restore(self, messages: Collection[tuple[bytes | None, bytes | None, int, int]]) -> None:
        """Take back the ``wanted`` messages ``(key, value, partition, offset)``, read again
        from the topic: each new tip of their chain is offered them (``SignedTip.restore``)."""
        asked = {at: chain for chain, where in self.wanted.items() for at in where}
        for key, value, partition, offset in messages:
            chain = asked.get((partition, offset))
            try:
                rec = read_record(value or b"")
            except ValueError:
                continue
            if chain is None or rec.chain != chain or key != chain.encode():
                continue  # not what was refused there: a checkpoint never covers it by this
            self._restored.setdefault(chain, []).append((rec, (partition, offset)))
        self._reread.update(asked)
        log.info("audit_refused_read_again", chains=sorted(self.wanted), messages=len(asked))
        self.wanted = {}

    def _take(self, batch: IndexBatch, offered: Offered[Position]) -> None:
        for refused in offered.refused:
            self._refuse(batch, refused.where, None, refused.reason, rec=refused.record)
        batch.unrefused += offered.unrefused
        for rec, (partition, offset) in offered.covered:
            batch.records.append(IndexedRecord(rec, partition, offset))
            self._pending[(rec.chain, rec.seq)] = rec.hash
            self.heads[rec.chain] = batch.heads[rec.chain] = ChainHead(rec.chain, rec.seq, rec.hash)
            self.summary.indexed += 1
        if offered.covered:  # the checkpoint that covered them: the one that verifies
            newest = offered.covered[-1][0]
            batch.checkpoints[newest.chain] = newest

    def _refuse(
        self,
        batch: IndexBatch,
        where: Position,
        value: bytes | None,
        reason: str,
        *,
        rec: AuditRecord | None = None,
        chain: str | None = None,
    ) -> None:
        """Keep a message out of the index, and a note of it (no content: only where, why and
        a digest); it changes no chain."""
        body = rec.to_bytes() if rec is not None else (value or b"")
        batch.refused.append(
            RefusedMessage(
                partition=where[0],
                offset=where[1],
                chain=rec.chain if rec is not None else chain,
                seq=rec.seq if rec is not None else None,
                reason=reason,
                digest=message_digest(body),
            )
        )
        self.summary.refused[reason] += 1
        log.warning("audit_message_refused", reason=reason, partition=where[0], offset=where[1])

    def _head(self, chain: str) -> ChainHead:
        return self.heads.get(chain) or ChainHead(chain, -1, GENESIS)

    def _break(self, batch: IndexBatch, head: ChainHead, exc: ChainBroken) -> None:
        if head.broken_seq is not None:
            self.summary.skipped_broken += 1
            return
        broken = replace(head, broken_seq=exc.seq, error=exc.what)
        self.heads[head.chain] = batch.heads[head.chain] = broken
        self.summary.breaks.append(exc)
        log.error("audit_chain_broken", chain=head.chain, seq=exc.seq, what=exc.what)
