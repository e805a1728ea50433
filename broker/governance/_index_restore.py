"""Whether the messages the audit index read are still the topic's.

Kafka restored from a backup older than the index ends before the index's offsets, and
``behind_the_index`` refuses it. Once the workers have written past those offsets it no
longer does: the topic is as long as the index expects, but the messages at the offsets the
index has read are other ones (new chains' records, or a chain's written again from the
restored head), and the index would read on from its offsets past the new records below them.

So at start, and whenever a running indexer sees the topic shrink or its consumer go back,
each partition's newest messages the index holds below its stored offset (``HELD_COMPARED``
of them: records indexed and messages refused, by their ``message_digest``) are read again
from the topic, newest first, until one is there, and compared. A different message at an
offset the index read is refused in one line. An offset with no message now is no alarm:
compaction removes messages and keeps the others' offsets, and retention removes the oldest;
an older one is compared instead, and a partition whose compared offsets are all gone is
logged as unchecked (``audit_index_unchecked``), never refused. What a restored topic holds
at an offset that was a transaction's marker when the index read it is not compared: the
index keeps nothing of markers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import structlog

from broker.audit import read_record
from broker.errors import AuditError, TransportError
from broker.governance._store import AuditStore, message_digest

log = structlog.get_logger("accord.audit")

#: The newest messages the index holds of each partition that are read again at start.
HELD_COMPARED: Final = 10

# Fetches of one offset before a read that brings nothing back is a failed read: a fetch may
# come back empty before the data arrives (as in ``read_at``).
_FETCHES: Final = 20


@dataclass(frozen=True, slots=True)
class Compared:
    """One partition's newest held message that is still on the topic, and whether it is the
    one the index read there (None: none of those compared is there now)."""

    offset: int | None = None
    same: bool = True


def compare(held: Sequence[tuple[int, str]], found: Mapping[int, bytes | None]) -> Compared:
    """Compare the newest of ``held`` (offset, digest; newest first) that ``found`` (the
    topic's messages now, by offset) has with what the index read there."""
    for offset, digest in held:
        if offset in found:
            return Compared(offset, _digest(found[offset]) == digest)
    return Compared()


def _digest(value: bytes | None) -> str:
    """The message's digest as the indexer took it: a record by its canonical bytes."""
    try:
        return message_digest(read_record(value or b"").to_bytes())
    except ValueError:
        return message_digest(value or b"")


async def check_held(
    consumer: Any, tps: list[Any], stored: Mapping[int, int], store: AuditStore
) -> None:
    """Refuse a topic whose messages at the offsets the index read (below ``stored``) are not
    the ones it read. Moves the consumer's positions: seek after."""
    for tp in tps:
        before = stored.get(tp.partition, 0)
        held = store.held_before(tp.topic, tp.partition, before, HELD_COMPARED) if before else []
        if not held:
            continue
        first = (await consumer.beginning_offsets([tp])).get(tp, 0)
        on_topic = [offset for offset, _ in held if offset >= first]
        verdict = compare(held, await _read_newest(consumer, tp, on_topic, before))
        if verdict.offset is None:
            # Nothing to compare with is not evidence of a restore: say so, and read on.
            log.warning(
                "audit_index_unchecked",
                topic=tp.topic,
                partition=tp.partition,
                offset=held[0][0],
                why="retention" if not on_topic else "compaction",
            )
        elif not verdict.same:
            raise AuditError(
                f"the audit index has read {tp.topic} partition {tp.partition} up to offset "
                f"{before}, but the message at offset {verdict.offset} is not the one it read "
                "there: Kafka was restored from a backup older than the index and written to "
                "since, or the topic recreated; nothing was indexed. Restore an audit index "
                "backed up at or before the Kafka backup, or rebuild the index into an empty "
                "database with 'accord audit index --once' (docs/deployment.md, Restore)"
            )


async def _read_newest(
    consumer: Any, tp: Any, offsets: Sequence[int], before: int
) -> dict[int, bytes | None]:
    """The message at the newest of ``offsets`` (newest first, all below ``before``) that the
    topic still holds, by its offset; {} if it holds none of them."""
    upto = before  # nothing is on the topic at the offsets from here up to ``before``
    for at in offsets:
        consumer.seek(tp, at)
        got: list[Any] = []
        for _ in range(_FETCHES):
            got = (await consumer.getmany(tp, timeout_ms=500, max_records=5)).get(tp) or []
            # Past markers, aborted and removed messages, the position moves with nothing
            # returned: beyond ``upto``, those between are known to be gone.
            if got or await consumer.position(tp) >= upto:
                break
        first = next((m for m in got if m.offset >= at), None)
        if first is not None and first.offset == at:
            return {at: first.value}
        if first is None and await consumer.position(tp) < upto:
            raise TransportError(
                f"reading {tp.topic} partition {tp.partition} again at offset {at}: nothing "
                "came back; the next run reads it again"
            )
        upto = at
    return {}
