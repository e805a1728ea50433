"""What the signed log says an index must hold, whatever the index's own tables say.

An index's references against truncation (``chain_checkpoints``, ``chain_heads``) live in
the index: someone able to delete a chain's rows can delete those too, and the index then
looks like one that never held the chain. Two kinds of evidence kept elsewhere do not go with
them:

- every verification that passes writes, in its own signed ``console_query`` record, the
  heads it verified (``verified_heads``: each chain's newest signed checkpoint, seq and hash,
  and where it is in the topic). A later verification of an index holding those records
  refuses an index missing a chain they name, or holding it shorter or different, once that
  index has read the topic past the head (:class:`Vouches`): an index still catching up (one
  rebuilt, or restored from a backup) reads partitions at different paces;
- the topic itself (``--from-topic --db``): a chain the topic's writer signed, at offsets
  the index has already read past, must be in the index at least that far
  (:func:`check_index_holds`).

Neither catches an index from which the vouching records themselves were removed along with
everything they vouch for: saved heads (``--save-heads``/``--heads``) or the topic do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from broker.audit import AuditKind, AuditRecord, chain_writer
from broker.errors import ChainBroken
from broker.governance._store import AuditStore
from broker.governance._topic import TopicChains

#: The ``console_query`` data member naming the heads a passing verification saw.
VERIFIED_HEADS = "verified_heads"


class VerifiedHead(NamedTuple):
    """A chain's newest valid checkpoint as a verification found it, and where the index read
    it in the topic (partition, offset) when it knows."""

    seq: int
    hash: str
    position: tuple[int, int] | None = None


def verified_heads_data(heads: Mapping[str, VerifiedHead]) -> dict[str, object]:
    """``verified_heads`` as a record carries it: chain -> {"seq": int, "hash": str} and,
    where known, "partition" and "offset" (ints)."""
    out: dict[str, object] = {}
    for chain, head in sorted(heads.items()):
        member: dict[str, object] = {"seq": head.seq, "hash": head.hash}
        if head.position is not None:
            member["partition"], member["offset"] = head.position
        out[chain] = member
    return out


def _int(value: object) -> int | None:
    return value if type(value) is int else None


@dataclass(frozen=True, slots=True)
class Vouch:
    seq: int
    hash: str
    position: tuple[int, int] | None  # where the head is in the topic, if the record says
    by_chain: str  # the verification record that saw it
    by_seq: int

    def said(self) -> str:
        return (
            f"a signed verification ({self.by_chain} seq {self.by_seq}) saw it reach seq {self.seq}"
        )


class Vouches:
    """The furthest head of each chain that a verification record read so far vouches for."""

    def __init__(self) -> None:
        self.heads: dict[str, Vouch] = {}

    def take(self, rec: AuditRecord) -> None:
        # Only the console's writer may write console_query (schemas/audit-chain.md §3), and
        # the caller takes only records it verified; a member of another shape (an older
        # record has none) vouches for nothing.
        if rec.kind is not AuditKind.CONSOLE_QUERY or chain_writer(rec.chain) != "console":
            return
        heads = rec.data.get(VERIFIED_HEADS)
        if not isinstance(heads, Mapping):
            return
        for chain, head in heads.items():
            if not isinstance(chain, str) or not isinstance(head, Mapping):
                continue
            seq, digest = _int(head.get("seq")), head.get("hash")
            if seq is None or not isinstance(digest, str):
                continue
            part, offset = _int(head.get("partition")), _int(head.get("offset"))
            where = (part, offset) if part is not None and offset is not None else None
            old = self.heads.get(chain)
            if old is None or seq > old.seq:
                self.heads[chain] = Vouch(seq, digest, where, rec.chain, rec.seq)

    def partitions(self) -> set[int]:
        return {v.position[0] for v in self.heads.values() if v.position is not None}

    def check(self, store: AuditStore, held: Mapping[str, int], read_to: Mapping[int, int]) -> int:
        """Raise :class:`ChainBroken` for the first chain (by name) the index holds less of
        than a verification vouched for. ``held``: each verified chain's newest seq;
        ``read_to``: how far the index has read each partition. Returns how many vouched
        heads lie beyond that (not indexed yet, so not held against it)."""
        beyond = 0
        for chain in sorted(self.heads):
            vouch = self.heads[chain]
            if vouch.position is not None:
                part, offset = vouch.position
                if offset >= read_to.get(part, 0):
                    beyond += 1
                    continue
            head = held.get(chain)
            if head is None:
                raise ChainBroken(
                    0, f"chain missing from the index, but {vouch.said()}", chain=chain
                )
            if head < vouch.seq:
                raise ChainBroken(
                    head + 1, f"chain ends at seq {head}, but {vouch.said()}", chain=chain
                )
            if store.stored_hash(chain, vouch.seq) != vouch.hash:
                raise ChainBroken(
                    vouch.seq, f"record differs from the one {vouch.said()}", chain=chain
                )
        return beyond


def check_index_holds(
    topic: TopicChains, checkpoints: Mapping[str, AuditRecord], read_to: Mapping[int, int]
) -> int:
    """Raise :class:`ChainBroken` for the first chain (by name) the topic holds signed
    further than the index, below where the index has read the topic (``read_to``: each
    partition's next offset to read): missing from the index, or shorter there. The index
    trails the topic, so what it has not read yet is no fault; returns how many chains the
    topic has signed that the index has not reached yet (not read that far)."""
    behind = 0
    for chain in sorted(topic.signed_at):
        signed = topic.signed_at[chain]
        read = [seq for seq, part, offset in signed if offset < read_to.get(part, 0)]
        if not read:
            behind += 1
            continue
        want = max(read)
        cp = checkpoints.get(chain)
        if cp is None:
            raise ChainBroken(
                0,
                f"chain missing from the index, though the topic holds it signed through "
                f"seq {want} and the index has read past it",
                chain=chain,
            )
        if cp.seq < want:
            raise ChainBroken(
                cp.seq + 1,
                f"the index holds the chain signed through seq {cp.seq}, the topic through "
                f"seq {want}, and the index has read past it (records deleted from the index)",
                chain=chain,
            )
        if len(read) < len(signed) or cp.seq < signed[-1][0]:
            behind += 1
    return behind
