"""What the signed log says an index must hold, whatever the index's own tables say.

An index's references against truncation (``chain_checkpoints``, ``chain_heads``) live in
the index: someone able to delete a chain's rows can delete those too, and the index then
looks like one that never held the chain. Two kinds of evidence kept elsewhere do not go with
them:

- every verification of the configured index that passes writes, in its own signed
  ``console_query`` record, the heads it verified (``verified_heads``: each chain's newest
  signed checkpoint, seq and hash, and where it is in the topic) that no earlier such record
  the index holds vouches for already. A later verification of an index holding those records
  refuses an index missing a chain they name, or holding it shorter or different, once that
  index has read the topic past the head (:class:`Vouches`: each chain is held to the
  furthest head vouched for that the index has read past; an index still catching up, one
  rebuilt or restored from a backup, reads partitions at different paces). A verification of
  a copy (``detail.index_role`` ``copy``) vouches for nothing: a copy may hold a chain the
  live index never will (an evidence copy from before a restore, say), and the live index
  would then fail forever;
- the topic itself (``--from-topic --db``): a chain the topic's writer signed, at offsets
  the index has already read past, must be in the index at least that far
  (:func:`check_index_holds`).

Neither catches an index from which the vouching records themselves were removed along with
everything they vouch for, nor a chain no passing verification has vouched for yet (the
summary counts those): saved heads (``--save-heads``/``--heads``) or the topic do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from broker._words import plural
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
    at: datetime  # when that record says it was written (signed with it)

    def read_by(self, read_to: Mapping[int, int]) -> bool:
        """Whether an index that has read each partition up to ``read_to`` has read it."""
        return self.position is None or self.position[1] < read_to.get(self.position[0], 0)

    def said(self) -> str:
        return (
            f"a signed verification ({self.by_chain} seq {self.by_seq}) saw it reach seq {self.seq}"
        )


class Vouches:
    """Every head of each chain that the verification records read so far vouch for."""

    def __init__(self) -> None:
        self.heads: dict[str, list[Vouch]] = {}

    def take(self, rec: AuditRecord) -> None:
        # Only the console's writer may write console_query (schemas/audit-chain.md §3), and
        # the caller takes only records it verified; a member of another shape (an older
        # record has none) vouches for nothing.
        if rec.kind is not AuditKind.CONSOLE_QUERY or chain_writer(rec.chain) != "console":
            return
        detail = rec.data.get("detail")
        if isinstance(detail, Mapping) and detail.get("index_role") == "copy":
            return  # a copy's heads say nothing about what the live index must hold
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
            # Every one kept, not only the highest: an older head the index has read past
            # must still be held when a newer one lies beyond what it has read.
            vouch = Vouch(seq, digest, where, rec.chain, rec.seq, rec.at)
            self.heads.setdefault(chain, []).append(vouch)

    def partitions(self) -> set[int]:
        return {v.position[0] for vs in self.heads.values() for v in vs if v.position is not None}

    def vouched(self, chain: str, seq: int, digest: str, read_to: Mapping[int, int]) -> bool:
        """Whether a record read so far vouches for exactly this head of ``chain``, one the
        index has read past (``read_to``, as for :meth:`check`): a new record need not name
        it again (the older one stays and is held). One beyond is not held yet: named again."""
        return any(
            v.seq == seq and v.hash == digest and v.read_by(read_to)
            for v in self.heads.get(chain, ())
        )

    def furthest(self, chain: str, read_to: Mapping[int, int]) -> int:
        """The furthest seq of ``chain`` a vouch the index has read past holds it to; -1 if
        none does."""
        return max((v.seq for v in self.heads.get(chain, ()) if v.read_by(read_to)), default=-1)

    def newest(self, read_to: Mapping[int, int]) -> Vouch | None:
        """The vouch of the newest verification record (by its signed time) that holds the
        index to anything (one the index has read past), or None."""
        read = [v for vs in self.heads.values() for v in vs if v.read_by(read_to)]
        return max(read, key=lambda v: (v.at, v.by_chain, v.by_seq), default=None)

    def check(self, store: AuditStore, held: Mapping[str, int], read_to: Mapping[int, int]) -> int:
        """Raise :class:`ChainBroken` for the first chain (by name) the index holds less of
        than a verification vouched for. ``held``: each verified chain's newest seq;
        ``read_to``: how far the index has read each partition. Each chain is held to the
        furthest head vouched for that the index has read past. Returns how many chains have
        a vouched head beyond that (not indexed yet, so not held against it)."""
        beyond = 0
        for chain in sorted(self.heads):
            vouches = self.heads[chain]
            # One beyond what the index has read does not excuse the older ones below it (a
            # whole chain deleted is not "not indexed yet").
            read = [v for v in vouches if v.read_by(read_to)]
            if len(read) < len(vouches):
                beyond += 1
            if not read:
                continue
            vouch = max(read, key=lambda v: v.seq)
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


def past_vouch_words(past: Mapping[str, int], vouched: int, newest: Vouch) -> str:
    """What a verification of the index says of the records no signed verification vouches
    for, when one vouches for others: ``past`` (chain -> records newer in it than what a vouch
    holds it to; every chain's newest records are among them whenever a run writes its own
    record, so this is the usual case) and ``vouched`` (records the vouches hold).

    Said as counts, chain names (up to three) and when the newest vouching run was: that time
    is signed, so an index cut back to an earlier run, or restored from an older backup, shows
    an older run than the one its reader knows of."""
    records, chains = sum(past.values()), len(past)
    it = "it" if records == 1 else "they"
    names = f" ({', '.join(sorted(past))})" if chains <= 3 else ""
    at = f"{newest.at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    return (
        f". Every chain in the index verifies; signed verifications vouch for {vouched} of "
        f"its records, the newest at {at} ({newest.by_chain} seq {newest.by_seq}); "
        f"{plural(records, 'record')} in {plural(chains, 'chain')}{names} "
        f"{'is' if records == 1 else 'are'} newer than what they vouch for, checked in the "
        f"index only: removed from the end of {'its chain' if chains == 1 else 'their chains'}, "
        f"or with a whole chain, {it} would not show yet: run 'accord audit verify "
        f"--from-topic' (and --db) to check {'it' if records == 1 else 'them'} against Kafka"
    )


def check_index_holds(
    topic: TopicChains,
    checkpoints: Mapping[str, AuditRecord],
    read_to: Mapping[int, int],
    heads: Mapping[str, int] | None = None,
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
        head = (heads or {}).get(chain)
        if cp is None and head is not None and head >= 0:
            # Its records are there, its checkpoints not: say where what the index holds
            # ends, not that the whole chain is missing (an IG officer looked at seq 0).
            raise ChainBroken(
                head + 1 if head < want else want,
                f"the index holds the chain through seq {head} but no signed checkpoint of "
                f"it, though the topic holds it signed through seq {want} and the index has "
                "read past it (records or checkpoints deleted from the index)",
                chain=chain,
            )
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
