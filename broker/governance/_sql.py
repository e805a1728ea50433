"""The audit index's SQL, one portable schema for SQLite and PostgreSQL (``_dialects``).

Both speak this SQL (``?`` placeholders are rewritten to ``%s`` for psycopg); they differ
only in how they connect and open a transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from broker.audit import AuditRecord, read_record
from broker.errors import AuditError, IndexUnavailable
from broker.governance._schema import MIGRATIONS, SCHEMA_VERSION_TABLE
from broker.governance._sql_queries import SqlQueries
from broker.governance._sql_rows import refuse_newer, review_row
from broker.governance._sql_write import write_batch
from broker.governance._store import (
    ChainHead,
    DerivedRows,
    IndexBatch,
    StoredRow,
    VerifyRun,
    message_digest,
    parse_sql_time,
    sql_time,
)

_ROW_COLUMNS = (
    "chain, seq, at, kind, event_id, party, outcome, reason, agreement_id, purpose, "
    "hash, prev_hash, body"
)


class SqlAuditStore(SqlQueries):
    """The shared implementation; use :class:`SqliteAuditStore` or :class:`PostgresAuditStore`."""

    backend = "sql"

    def __init__(
        self, conn: Any, *, create: bool, where: str, read_only: bool = False, reopen: str = ""
    ) -> None:
        self._conn = conn
        if not create and not self._has_index():
            conn.close()
            # A mistyped --db must not read as "intact" or "nothing recorded".
            raise AuditError(f"no audit index at {where}; run 'accord audit index' first")
        try:
            self._migrate(where, read_only=read_only, reopen=reopen)
        except BaseException:
            conn.close()
            raise

    def _has_index(self) -> bool:
        raise NotImplementedError

    # -- dialect hooks --------------------------------------------------------------------

    def _sql(self, sql: str) -> str:
        return sql

    def _params(self, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        return params

    @contextlib.contextmanager
    def _tx(self) -> Iterator[None]:
        raise NotImplementedError

    def _lock_migrations(self) -> None:
        """Keep two processes from migrating at once (SQLite's write lock already does)."""

    def _lock_index(self) -> None:
        """Serialise indexers' batches (SQLite's ``BEGIN IMMEDIATE`` already does)."""

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        raise NotImplementedError

    # -- plumbing -------------------------------------------------------------------------

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self._conn.execute(self._sql(sql), self._params(tuple(params)))
        if cur.description is None:
            return []
        return list(cur.fetchall())

    def close(self) -> None:
        self._conn.close()

    def _migrate(self, where: str, *, read_only: bool = False, reopen: str = "") -> None:
        # Either driver's errors, each in one line (noqa BLE001 below): read first, and write
        # nothing when current, so a role that may only read (no CREATE on the schema, as
        # PostgreSQL 15 has public, or read-only transactions by default) opens an index
        # another role keeps up to date.
        try:
            current = self.schema_version() if self._has_index() else 0
        except Exception as exc:  # noqa: BLE001
            raise AuditError(
                f"cannot read the audit index at {where}: {type(exc).__name__}"
            ) from None
        refuse_newer(current, where)
        if current == len(MIGRATIONS):
            return
        if read_only:
            # A copy (evidence) is read as it is: upgrading it is a deliberate act.
            raise AuditError(
                f"the audit index at {where} is at schema version {current} and this Accord "
                f"reads {len(MIGRATIONS)}; it is not the configured index, so it is opened "
                f"read-only and never migrated: to upgrade it deliberately (which also catches "
                f"it up from the topic), run 'accord audit index --db {reopen or where}', on a "
                "further copy if this one is evidence"
            )
        try:
            self._apply_migrations(where)
        except AuditError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise AuditError(
                f"the audit index at {where} is at schema version {current} and this Accord "
                f"needs {len(MIGRATIONS)}, but it could not be brought up to date "
                f"({type(exc).__name__}): run 'accord audit index' once as a database role "
                "that may create tables"
            ) from None

    def _apply_migrations(self, where: str) -> None:
        self._q(SCHEMA_VERSION_TABLE)
        with self._tx():
            self._lock_migrations()
            rows = self._q("SELECT MAX(version) FROM schema_version")
            current = int(rows[0][0] or 0)
            refuse_newer(current, where)  # a newer Accord migrated it since we looked
            for number, statements in enumerate(MIGRATIONS, start=1):
                if number <= current:
                    continue
                for statement in statements:
                    self._q(statement)
                self._q(
                    "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                    (number, sql_time(datetime.now(UTC))),
                )

    def schema_version(self) -> int:
        return int(self._q("SELECT MAX(version) FROM schema_version")[0][0] or 0)

    # -- indexing -------------------------------------------------------------------------

    def offsets(self, topic: str) -> dict[int, int]:
        rows = self._q(
            "SELECT kafka_partition, next_offset FROM kafka_offsets WHERE topic = ?", (topic,)
        )
        return {int(p): int(o) for p, o in rows}

    def heads(self) -> dict[str, ChainHead]:
        rows = self._q("SELECT chain, seq, hash, broken_seq, error FROM chain_heads")
        return {
            c: ChainHead(c, int(s), h, None if b is None else int(b), e) for c, s, h, b, e in rows
        }

    def broken_chains(self) -> list[str]:
        rows = self._q("SELECT chain FROM chain_heads WHERE broken_seq IS NOT NULL ORDER BY chain")
        return [str(r[0]) for r in rows]

    def stored_hash(self, chain: str, seq: int) -> str | None:
        rows = self._q("SELECT hash FROM audit_records WHERE chain = ? AND seq = ?", (chain, seq))
        return str(rows[0][0]) if rows else None

    def position_of(self, chain: str, seq: int) -> tuple[int, int] | None:
        rows = self._q(
            "SELECT kafka_partition, kafka_offset FROM audit_records WHERE chain = ? AND seq = ?",
            (chain, seq),
        )
        return (int(rows[0][0]), int(rows[0][1])) if rows else None

    def refusals_of_chain(
        self,
        topic: str,
        chain: str,
        after_seq: int,
        before_seq: int,
        reasons: Collection[str],
        *,
        per_seq: int,
        limit: int,
    ) -> list[tuple[int, int]]:
        marks = ", ".join("?" for _ in reasons)
        # Several refusals can share a seq (anyone can write the topic): at most ``per_seq``
        # of each, the first in the topic, so copies at one seq never crowd out the others.
        rows = self._q(
            "SELECT kafka_partition, kafka_offset FROM (SELECT kafka_partition, kafka_offset, "  # noqa: S608  # placeholders only, values are bound
            "seq, ROW_NUMBER() OVER (PARTITION BY seq ORDER BY kafka_partition, kafka_offset) "
            "AS n FROM audit_refused WHERE topic = ? AND chain = ? AND seq > ? AND seq < ? "
            f"AND reason IN ({marks})) r WHERE n <= ? "
            "ORDER BY seq, kafka_partition, kafka_offset LIMIT ?",
            (topic, chain, after_seq, before_seq, *reasons, per_seq, limit),
        )
        return [(int(p), int(o)) for p, o in rows]

    def held_before(
        self, topic: str, partition: int, before: int, limit: int
    ) -> list[tuple[int, str]]:
        # ``audit_records`` has no topic column: an index holds the records of one topic.
        records = self._q(
            "SELECT kafka_offset, body FROM audit_records WHERE kafka_partition = ? "
            "AND kafka_offset < ? ORDER BY kafka_offset DESC LIMIT ?",
            (partition, before, limit),
        )
        refused = self._q(
            "SELECT kafka_offset, digest FROM audit_refused WHERE topic = ? "
            "AND kafka_partition = ? AND kafka_offset < ? ORDER BY kafka_offset DESC LIMIT ?",
            (topic, partition, before, limit),
        )
        held = [(int(o), message_digest(str(b).encode("utf-8"))) for o, b in records]
        held += [(int(o), str(d)) for o, d in refused]
        return sorted(held, reverse=True)[:limit]

    def apply(self, batch: IndexBatch) -> bool:
        with self._tx():
            self._lock_index()
            if batch.base_offsets is not None:
                stored = self.offsets(batch.topic)
                if any(stored.get(p) != batch.base_offsets.get(p) for p in batch.offsets):
                    return False
            write_batch(self._q, batch)
        return True

    # -- verification ---------------------------------------------------------------------

    def count(self) -> int:
        return int(self._q("SELECT COUNT(*) FROM audit_records")[0][0])

    def chains(self) -> list[str]:
        rows = self._q(
            "SELECT chain FROM audit_records UNION SELECT chain FROM chain_heads "
            "UNION SELECT chain FROM chain_checkpoints"
        )
        return sorted(str(r[0]) for r in rows)

    def rows(self, chain: str) -> Iterator[StoredRow]:
        rows = self._q(
            f"SELECT {_ROW_COLUMNS} FROM audit_records WHERE chain = ? ORDER BY seq",  # noqa: S608  # constant column list
            (chain,),
        )
        for r in rows:
            yield StoredRow(
                str(r[0]),
                int(r[1]),
                *(None if v is None else str(v) for v in r[2:]),  # type: ignore[arg-type]  # NOT NULL columns are never None
            )

    def latest_checkpoint(self, chain: str) -> AuditRecord | None:
        rows = self._q("SELECT body FROM chain_checkpoints WHERE chain = ?", (chain,))
        return read_record(rows[0][0]) if rows else None

    def derived_rows(self) -> DerivedRows:
        return DerivedRows(
            subjects=[
                (str(k), str(c), int(s))
                for k, c, s in self._q("SELECT subject_key, chain, seq FROM audit_subjects")
            ],
            reviews=[
                (review_row(r), str(r[7]), int(r[8]))
                for r in self._q(
                    "SELECT event_id, party, reviewed_by, finding, reference, note, "
                    "reviewed_at, chain, seq FROM override_reviews"
                )
            ],
            notices=[
                (str(e), str(p), str(a), str(c), int(s))
                for e, p, a, c, s in self._q(
                    "SELECT event_id, party, notified_at, chain, seq FROM encompass_notices"
                )
            ],
        )

    # -- verification runs (the reports' queries are SqlQueries', in _sql_queries) -----

    def keep_verification(self, run: VerifyRun) -> None:
        try:
            with self._tx():
                self._lock_index()  # numbered in the order kept, whoever keeps one meanwhile
                number = int(self._q("SELECT COALESCE(MAX(run), 0) + 1 FROM verify_runs")[0][0])
                self._q(
                    "INSERT INTO verify_runs (run, at, by_whom, via, ok, records, chains, chain, "
                    "seq, problem) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (number, sql_time(run.at), run.by, run.via, int(run.ok), run.records,
                     run.chains, run.chain, run.seq, run.problem),
                )  # fmt: skip
        except IndexUnavailable:
            raise  # not refused: out of reach (our words already, and connected again next use)
        except Exception as exc:  # noqa: BLE001  # either driver's error: the index is not writable
            raise AuditError(f"the database refused it ({type(exc).__name__})") from None

    def last_verification(self) -> VerifyRun | None:
        rows = self._q(
            "SELECT at, by_whom, via, ok, records, chains, chain, seq, problem FROM verify_runs "
            # By when each run's snapshot was opened, not the order they finished in: a pass
            # over an older snapshot, kept last, must not hide a failure found in a newer one.
            "ORDER BY at DESC, run DESC LIMIT 1"
        )
        if not rows:
            return None
        at, by, via, ok, records, chains, chain, seq, problem = rows[0]
        return VerifyRun(
            parse_sql_time(str(at)), str(by), str(via), bool(ok),
            None if records is None else int(records), None if chains is None else int(chains),
            None if chain is None else str(chain), None if seq is None else int(seq),
            None if problem is None else str(problem),
        )  # fmt: skip
