"""What of a chain its writer has signed: records wait until a checkpoint covers them.

Anyone who can write to ``accord.audit`` can append a record that hash-links to a chain's
head (the head's hash is public). Hash links alone therefore prove nothing about who wrote a
record; the writer's signed checkpoint does. So a record is taken only once a checkpoint of
that chain, signed by a key of the chain's writer, covers it: the path from the checkpoint
back to the last covered record is the writer's, and any other record offered for those
sequence numbers was not (a fork nobody signed). Nothing unsigned can break a chain either:
only a *signed* checkpoint that does not link to what is held proves history is missing.

The worker signs at every transaction and the console at every append, so what waits is at
most one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from broker.audit import AuditKind, AuditRecord, CheckpointVerifier, check_next
from broker.errors import ChainBroken
from broker.kafka import partition_for

T = TypeVar("T")


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
    """What one record brought: records now covered (in order), records refused."""

    covered: tuple[tuple[AuditRecord, T], ...] = ()
    refused: tuple[Refused[T], ...] = ()


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

    @property
    def waiting(self) -> list[tuple[AuditRecord, T]]:
        return list(self._waiting.values())

    def offer(self, rec: AuditRecord, where: T) -> Offered[T]:
        """Take a record newer than the covered head (``rec.seq > self.seq``).

        Raises ``ChainBroken`` only on signed evidence: a checkpoint that verifies but does
        not link to anything held, so records the writer signed are missing.
        """
        if rec.hash in self._waiting:
            return Offered()  # read twice (an indexer re-reading after a restart)
        if rec.computed_hash() != rec.hash:
            return Offered(refused=(Refused(rec, where, "bad-hash"),))
        parent = self._waiting.get(rec.prev_hash)
        links = (rec.prev_hash == self.hash and rec.seq == self.seq + 1) or (
            parent is not None and parent[0].seq == rec.seq - 1
        )
        if rec.kind is AuditKind.CHECKPOINT:
            try:
                check_next(rec, rec.seq, rec.prev_hash, self._verifier)
            except ChainBroken:
                return Offered(refused=(Refused(rec, where, "bad-checkpoint"),))
            if not links:
                raise ChainBroken(
                    rec.seq,
                    "a signed checkpoint does not link to the records held: signed history "
                    "is missing",
                    chain=self.chain,
                )
            return self._cover(rec, where)
        if not links:
            return Offered(refused=(Refused(rec, where, "does-not-link"),))
        self._waiting[rec.hash] = (rec, where)
        return Offered()

    def _cover(self, checkpoint: AuditRecord, where: T) -> Offered[T]:
        path: list[tuple[AuditRecord, T]] = [(checkpoint, where)]
        digest = checkpoint.prev_hash
        while digest != self.hash:
            rec, at = self._waiting.pop(digest)
            path.append((rec, at))
            digest = rec.prev_hash
        path.reverse()
        # Everything else waiting competed with the signed path, or descends from what did.
        forks = tuple(Refused(r, at, "not-signed-by-writer") for r, at in self._waiting.values())
        self._waiting.clear()
        self.seq, self.hash = checkpoint.seq, checkpoint.hash
        return Offered(covered=tuple(path), refused=forks)
