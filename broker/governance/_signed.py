"""What of a chain its writer has signed: records wait until a checkpoint covers them.

Anyone who can write to ``accord.audit`` can append a record that hash-links to a chain's
head (the head's hash is public). Hash links alone therefore prove nothing about who wrote a
record; the writer's signed checkpoint does. So a record is taken only once a checkpoint of
that chain, signed by a key of the chain's writer, covers it: the path from the checkpoint
back to the last covered record is the writer's, and any other record offered for those
sequence numbers was not (a fork nobody signed). Nothing unsigned can break a chain either:
only a *signed* checkpoint that does not link to what is held proves history is missing.

A checkpoint that does not verify (a key revoked since it signed, a forgery) vouches for
nothing: it waits like any other record, and a later valid checkpoint whose hash links run
through it covers it (schemas/audit-chain.md §6 rule 6). A forgery is covered only if the
writer itself chained onto it, which a writer does only with records it wrote.

Every writer commits its checkpoint in the same Kafka transaction as the records it covers,
and a record read ``read_committed`` was committed, so its checkpoint lies below the
partition's high watermark as it stood when the record was read (another writer's
transaction still open between the two can keep the checkpoint unread for a while, never
past that watermark). ``expire`` refuses, as never signed, the records still waiting once
the reader has read past it (the indexer decides when: ``_index``); it does not wait for
ever. A record refused so, or refused because it did not link to what was held (its parent
refused so), is not lost: ``restore`` hands it back (a reader that refused it earlier reads
it again from the topic), and a valid checkpoint whose hash links run through it covers it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from broker.audit import AuditKind, AuditRecord, CheckpointVerifier, check_next
from broker.errors import ChainBroken
from broker.kafka import partition_for

T = TypeVar("T")

#: Why a genuine record can be refused and then covered after all, by a valid checkpoint of
#: its writer read later: never signed as far as the reader could tell, or not linking to what
#: it held because its parent had been refused so. Nothing refused for another reason is
#: ever covered (a bad hash, a misplaced or foreign record, a rewrite of indexed history).
UNDONE_BY_A_LATER_CHECKPOINT = ("not-signed-by-writer", "does-not-link", "bad-checkpoint")

#: Records refused by ``expire`` a tip keeps in memory, so that a valid checkpoint read later
#: by the same reader covers them without reading them again. Anyone able to write to the
#: topic can add records no one signs, so this is bounded; the oldest go first, and a
#: checkpoint that needs one of them has it read again from the topic (``restore``).
REFUSED_HELD_PER_CHAIN = 1000


def misplaced(key: bytes | None, chain: str, partition: int, partitions: int | None) -> str | None:
    """Why a message is no record of ``chain``'s, or None when it is where one must be.

    schemas/audit-chain.md §1: a chain's records are keyed by the chain's name, so they all
    sit on the one partition Kafka's partitioner gives that key. A copy elsewhere (a
    genuine checkpoint replayed onto another partition, read before the chain's own
    records) would otherwise be signed evidence that history is missing, and break a chain
    that is whole. ``partitions`` None: the topic's size is not known, the key alone is
    checked. It is the count the topic has now: records written under another count would
    all be misplaced, which is why ``accord.audit`` is never resized (docs/governance.md).
    """
    if key != chain.encode():
        return "wrong-key"
    if partitions is not None and partition_for(key, list(range(partitions))) != partition:
        return "wrong-partition"
    return None


@dataclass(frozen=True, slots=True)
class Refused(Generic[T]):
    record: AuditRecord
    where: T
    reason: str


@dataclass(frozen=True, slots=True)
class Offered(Generic[T]):
    """What one record brought: records now covered (in order), records refused, and where
    the covered records were that had been refused before (``expire`` or ``restore``)."""

    covered: tuple[tuple[AuditRecord, T], ...] = ()
    refused: tuple[Refused[T], ...] = ()
    unrefused: tuple[T, ...] = ()


class SignedTip(Generic[T]):
    """One chain: its newest covered record, and records waiting for a checkpoint.

    ``where`` travels with each record (its Kafka position, for the indexer).
    """

    def __init__(self, chain: str, seq: int, digest: str, verifier: CheckpointVerifier) -> None:
        self.chain = chain
        self.seq = seq
        self.hash = digest
        self._verifier = verifier
        self._waiting: dict[str, tuple[AuditRecord, T]] = {}  # by the record's hash
        # Refused by ``expire``, oldest first, kept (up to REFUSED_HELD_PER_CHAIN) so a valid
        # checkpoint read later by this reader can still cover them.
        self._expired: dict[str, tuple[AuditRecord, T]] = {}
        # Refused earlier and read again for a checkpoint that did not link without them: all
        # kept, being what that checkpoint needs (bounded by what was read again).
        self._restored: dict[str, tuple[AuditRecord, T]] = {}

    @property
    def waiting(self) -> list[tuple[AuditRecord, T]]:
        return list(self._waiting.values())

    @property
    def refused_held(self) -> int:
        """Records refused by ``expire`` still kept in memory (``forget`` drops them)."""
        return len(self._expired)

    @property
    def holds(self) -> bool:
        """Whether the tip holds anything but the covered head (else it can be rebuilt)."""
        return bool(self._waiting or self._expired or self._restored)

    def _refused(self, digest: str) -> tuple[AuditRecord, T] | None:
        return self._expired.get(digest) or self._restored.get(digest)

    def offer(self, rec: AuditRecord, where: T) -> Offered[T]:
        """Take a record newer than the covered head (``rec.seq > self.seq``).

        Raises ``ChainBroken`` only on signed evidence: a checkpoint that verifies but does
        not link to anything held, so records the writer signed are missing.
        """
        if rec.hash in self._waiting or self._refused(rec.hash) is not None:
            return Offered()  # read twice (an indexer re-reading after a restart)
        if rec.computed_hash() != rec.hash:
            return Offered(refused=(Refused(rec, where, "bad-hash"),))
        parent = self._waiting.get(rec.prev_hash) or self._refused(rec.prev_hash)
        links = (rec.prev_hash == self.hash and rec.seq == self.seq + 1) or (
            parent is not None and parent[0].seq == rec.seq - 1
        )
        if rec.kind is AuditKind.CHECKPOINT and self._vouches(rec):
            if not (links and self._held_back_to_head(rec.prev_hash)):
                raise ChainBroken(
                    rec.seq,
                    "a signed checkpoint does not link to the records held: signed history "
                    "is missing",
                    chain=self.chain,
                )
            return self._cover(rec, where)
        if not links:
            reason = "bad-checkpoint" if rec.kind is AuditKind.CHECKPOINT else "does-not-link"
            return Offered(refused=(Refused(rec, where, reason),))
        # A checkpoint that does not verify waits like any record: it vouches for nothing,
        # and a valid checkpoint of the writer's may yet run through it (§6 rule 6).
        self._waiting[rec.hash] = (rec, where)
        return Offered()

    def _held_back_to_head(self, digest: str) -> bool:
        """Whether every record from ``digest`` back to the covered head is held: ``forget``
        may have dropped an old one, which must then be read again before anything covers."""
        while digest != self.hash:
            held = self._waiting.get(digest) or self._refused(digest)
            if held is None:
                return False
            digest = held[0].prev_hash
        return True

    def _vouches(self, checkpoint: AuditRecord) -> bool:
        try:
            check_next(checkpoint, checkpoint.seq, checkpoint.prev_hash, self._verifier)
        except ChainBroken:
            return False
        return True

    def expire(self, ended: Callable[[T], bool]) -> tuple[Refused[T], ...]:
        """Refuse the waiting records for which ``ended(where)``: their partition has been
        read past where their writer's checkpoint would be, had it signed them."""
        gone = {h: w for h, w in self._waiting.items() if ended(w[1])}
        for digest in gone:
            del self._waiting[digest]
        self._expired.update(gone)
        self.forget(len(self._expired) - REFUSED_HELD_PER_CHAIN)
        return tuple(Refused(r, at, "not-signed-by-writer") for r, at in gone.values())

    def forget(self, count: int) -> int:
        """Drop from memory up to ``count`` of the oldest records ``expire`` refused; how
        many went. Their refusal is recorded where they were read (the indexer's
        ``audit_refused``), so a checkpoint that needs them has them read again."""
        gone = list(self._expired)[: max(0, count)]
        for digest in gone:
            del self._expired[digest]
        return len(gone)

    def restore(self, refused: Iterable[tuple[AuditRecord, T]]) -> None:
        """Take back records refused earlier, by this reader or an earlier one, whatever the
        reason a later checkpoint can undo (``UNDONE_BY_A_LATER_CHECKPOINT``): like those
        ``expire`` refused, they vouch for nothing and hold nothing back, and a valid
        checkpoint whose hash links run through them covers them. Only records that link to
        the covered head or to one another are kept, taken in chain order; a forgery among
        them is covered only if the writer chained onto it (the module's docstring)."""
        for rec, where in sorted(refused, key=lambda r: r[0].seq):
            if rec.seq <= self.seq or rec.hash in self._waiting or self._refused(rec.hash):
                continue
            parent = self._refused(rec.prev_hash)
            links = (rec.prev_hash == self.hash and rec.seq == self.seq + 1) or (
                parent is not None and parent[0].seq == rec.seq - 1
            )
            if links and rec.computed_hash() == rec.hash:
                self._restored[rec.hash] = (rec, where)

    def _cover(self, checkpoint: AuditRecord, where: T) -> Offered[T]:
        path: list[tuple[AuditRecord, T]] = [(checkpoint, where)]
        unrefused: list[T] = []
        digest = checkpoint.prev_hash
        while digest != self.hash:
            if digest in self._waiting:
                rec, at = self._waiting.pop(digest)
            else:
                held = self._expired if digest in self._expired else self._restored
                rec, at = held.pop(digest)
                unrefused.append(at)
            path.append((rec, at))
            digest = rec.prev_hash
        path.reverse()
        # Everything else waiting competed with the signed path, or descends from what did.
        forks = tuple(Refused(r, at, "not-signed-by-writer") for r, at in self._waiting.values())
        self._waiting.clear()
        self._expired.clear()  # refused already
        self._restored.clear()
        self.seq, self.hash = checkpoint.seq, checkpoint.hash
        return Offered(covered=tuple(path), refused=forks, unrefused=tuple(reversed(unrefused)))
