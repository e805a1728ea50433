"""What one indexed batch writes: its records, their subjects, reviews and notices, the
chains' heads and checkpoints, the refusals and the topic's offsets (``_sql``'s ``apply``
runs it in one transaction, after checking the batch follows what is stored)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from broker.audit import AuditKind, AuditRecord
from broker.governance._store import (
    IndexBatch,
    derived_columns,
    is_encompass_notice,
    notice_row,
    review_row,
)

Query = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]


def write_batch(q: Query, batch: IndexBatch) -> None:
    for item in batch.records:
        rec = item.record
        cols = derived_columns(rec)
        cols.update(
            body=rec.to_bytes().decode("utf-8"),
            kafka_partition=item.partition,
            kafka_offset=item.offset,
        )
        names = ", ".join(cols)
        marks = ", ".join("?" for _ in cols)
        # Idempotent by (chain, seq): the indexer only offers records it verified
        # follow the stored head, so a conflict is a replay of an identical record.
        q(
            f"INSERT INTO audit_records ({names}) VALUES ({marks}) "  # noqa: S608  # column names are ours, values are bound
            "ON CONFLICT (chain, seq) DO NOTHING",
            list(cols.values()),
        )
        for key in rec.subject_keys:
            q(
                "INSERT INTO audit_subjects (subject_key, chain, seq) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (key, rec.chain, rec.seq),
            )
        if rec.kind is AuditKind.OVERRIDE_REVIEWED:
            _add_review(q, rec)
        if is_encompass_notice(rec):
            q(
                "INSERT INTO encompass_notices (event_id, party, notified_at, chain, seq) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (event_id, party) DO NOTHING",
                (*notice_row(rec), rec.chain, rec.seq),
            )
    for head in batch.heads.values():
        q(
            "INSERT INTO chain_heads (chain, seq, hash, broken_seq, error) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (chain) DO UPDATE SET "
            "seq = excluded.seq, hash = excluded.hash, "
            "broken_seq = excluded.broken_seq, error = excluded.error",
            (head.chain, head.seq, head.hash, head.broken_seq, head.error),
        )
    for chain, cp in batch.checkpoints.items():
        # Only ever forward: an older checkpoint never replaces a newer reference.
        q(
            "INSERT INTO chain_checkpoints (chain, seq, covers_seq, body) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, "
            "covers_seq = excluded.covers_seq, body = excluded.body "
            "WHERE excluded.seq > chain_checkpoints.seq",
            (chain, cp.seq, int(cp.data["covers_seq"]), cp.to_bytes().decode("utf-8")),
        )
    for m in batch.refused:
        q(
            "INSERT INTO audit_refused (topic, kafka_partition, kafka_offset, chain, seq, "
            "reason, digest) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (batch.topic, m.partition, m.offset, m.chain, m.seq, m.reason, m.digest),
        )
    for partition, offset in batch.unrefused:
        # Indexed after all: the row would tell the IG officer a genuine record was
        # kept out (docs/governance.md). Its position is on its audit_records row.
        q(
            "DELETE FROM audit_refused WHERE topic = ? AND kafka_partition = ? "
            "AND kafka_offset = ?",
            (batch.topic, partition, offset),
        )
    for partition, offset in batch.offsets.items():
        q(
            "INSERT INTO kafka_offsets (topic, kafka_partition, next_offset) "
            "VALUES (?, ?, ?) ON CONFLICT (topic, kafka_partition) "
            "DO UPDATE SET next_offset = excluded.next_offset",
            (batch.topic, partition, offset),
        )


def _add_review(q: Query, rec: AuditRecord) -> None:
    # The first review of an override stands; a later one stays in the log for the record.
    q(
        "INSERT INTO override_reviews (event_id, party, reviewed_by, finding, reference, "
        "note, reviewed_at, chain, seq) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id, party) DO NOTHING",
        (*review_row(rec), rec.chain, rec.seq),
    )
