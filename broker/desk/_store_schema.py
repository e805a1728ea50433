"""The desk store's tables, and what a store made by an older desk is given at start.

Every statement is idempotent, so a desk that stops half way through runs them all again at
its next start: ``CREATE … IF NOT EXISTS`` for tables, and a column added only when the table
does not have it yet. Two processes of one party's desk may start together and both find a
column missing: PostgreSQL's ``ADD COLUMN IF NOT EXISTS`` lets the second through, and on
SQLite (which has no ``IF NOT EXISTS`` there) the second's "duplicate column" is accepted once
the column is seen to be there.

What a store has been given is named in ``desk_migrations``, and a desk refuses a store that
names one it does not know (``refuse_newer``): a newer desk has changed it, and an older one
reading or writing it could lose what the newer one keeps (a restored older image, a
rollback). So every change to the store adds its name to :data:`KNOWN_MIGRATIONS` and
records it when done.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog

from broker.desk import _store_locks
from broker.desk._flag import view_keys_child_by_nhs_number
from broker.desk._store_locks import others_kept_out, schema_lock, start_waits
from broker.errors import ConfigError

log = structlog.get_logger("accord.desk")

__all__ = [
    "CHILD_NHS",
    "KNOWN_MIGRATIONS",
    "PUBLISHED_ONCE",
    "REKEYED",
    "SCHEMA",
    "claim",
    "held_up_fails",
    "mark_child_nhs",
    "migrate",
    "prepare",
    "refuse_newer",
]

#: Every child re-keyed once from the views stored (``DeskStore.rekey_children``).
REKEYED = "child-keys-2026-12-05"
#: Every record marked with whether a child of it is keyed by NHS number (``child_nhs``).
CHILD_NHS = "records-child-nhs-2026-12-07"
#: One decision per published event (``desk_decisions_published_once``), duplicates removed.
PUBLISHED_ONCE = "decisions-published-once-2026-12-07"
#: The migrations this desk knows, in the order they were made.
KNOWN_MIGRATIONS = (REKEYED, CHILD_NHS, PUBLISHED_ONCE)

_INDEX_NAME = re.compile(r"\s*CREATE (?:UNIQUE )?INDEX IF NOT EXISTS (\w+)")
#: A query: SQL and its bound values.
_Query = Callable[..., list[tuple[Any, ...]]]
_FILL_BATCH = 500  # ids per IN (...): within SQLite's bound on parameters

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS desk_records (
        event_id TEXT PRIMARY KEY, event_type TEXT NOT NULL, sender TEXT NOT NULL,
        reference TEXT, occurred_at TEXT, decided_at TEXT NOT NULL, received_at TEXT NOT NULL,
        purpose TEXT NOT NULL, outcome TEXT NOT NULL, decision TEXT NOT NULL, view TEXT NOT NULL,
        hidden INTEGER NOT NULL DEFAULT 0, hidden_reason TEXT, hidden_at TEXT,
        child_nhs INTEGER)""",
    """CREATE TABLE IF NOT EXISTS desk_record_children (
        event_id TEXT NOT NULL, child TEXT NOT NULL, PRIMARY KEY (event_id, child))""",
    # Covered by desk_children_by_child_event's (child) prefix since 2026-12-07, but kept:
    # dropping it takes an ACCESS EXCLUSIVE lock on PostgreSQL at every start that finds it,
    # and an older desk in the same fleet makes it again.
    "CREATE INDEX IF NOT EXISTS desk_children_by_child ON desk_record_children (child)",
    "CREATE INDEX IF NOT EXISTS desk_records_by_reference ON desk_records (reference)",
    # The search by reference compares UPPER(reference): only an index of that expression
    # serves it (the one above serves a referral's outcomes, found by the exact reference).
    """CREATE INDEX IF NOT EXISTS desk_records_by_upper_reference
        ON desk_records (UPPER(reference))""",
    # The records a search by reference cannot find, counted on every such search
    # (DeskStore.count_unsearchable): only those are indexed.
    """CREATE INDEX IF NOT EXISTS desk_records_without_reference ON desk_records (hidden)
        WHERE reference IS NULL OR TRIM(reference) = ''""",
    # trigger_event_id, window_seconds and household: since 2026-12-06, withdrawable since
    # 2026-12-07 (see _FLAG_COLUMNS).
    """CREATE TABLE IF NOT EXISTS desk_flags (
        flag_id TEXT PRIMARY KEY, rule TEXT NOT NULL, title TEXT NOT NULL, child TEXT NOT NULL,
        event_ids TEXT NOT NULL, raised_at TEXT NOT NULL, received_at TEXT NOT NULL,
        trigger_event_id TEXT, window_seconds INTEGER, household TEXT, withdrawable INTEGER)""",
    # flag_id: the one flag a decision settled, until 2026-12-06; since then
    # desk_decision_flags says which (any number of the child's flags).
    """CREATE TABLE IF NOT EXISTS desk_decisions (
        decision_id TEXT PRIMARY KEY, flag_id TEXT, child TEXT, subject_event TEXT,
        action TEXT NOT NULL, reason TEXT NOT NULL, decided_by TEXT NOT NULL,
        decided_at TEXT NOT NULL, published_event TEXT)""",
    # The team's "New records since a decision", on every load of its home page
    # (_store_since): each child's latest decision, and its records since, read from indexes
    # (docs/performance.md: 6 s to under 2 on SQLite, 230 s to 2 on PostgreSQL, at 300,000
    # records). Only indexes: an older desk reads and writes the store as before, so no
    # migration is named.
    "CREATE INDEX IF NOT EXISTS desk_decisions_by_child ON desk_decisions (child, decided_at)",
    """CREATE INDEX IF NOT EXISTS desk_children_by_child_event
        ON desk_record_children (child, event_id)""",
    """CREATE INDEX IF NOT EXISTS desk_records_since
        ON desk_records (event_id, hidden, received_at, event_type, reference)""",
    """CREATE TABLE IF NOT EXISTS desk_decision_flags (
        decision_id TEXT NOT NULL, flag_id TEXT NOT NULL, PRIMARY KEY (decision_id, flag_id))""",
    "CREATE INDEX IF NOT EXISTS desk_decision_flags_by_flag ON desk_decision_flags (flag_id)",
    """CREATE TABLE IF NOT EXISTS desk_encompass_acks (
        event_id TEXT PRIMARY KEY, acknowledged_by TEXT NOT NULL, acknowledged_at TEXT NOT NULL)""",
    # Who first opened each notice, its access acknowledgement sent (_store_notices): since
    # 2026-12-08; a table only, which an older desk leaves alone (a notice opened only there
    # counts unread here, never read when it was not).
    """CREATE TABLE IF NOT EXISTS desk_encompass_opened (
        event_id TEXT PRIMARY KEY, opened_by TEXT NOT NULL, opened_at TEXT NOT NULL)""",
    # Every withdrawn event id, kept: a notice can be read before the record it recalls (they
    # travel on different partitions), and the record must then arrive hidden.
    """CREATE TABLE IF NOT EXISTS desk_withdrawn (
        event_id TEXT PRIMARY KEY, reason TEXT NOT NULL, withdrawn_at TEXT NOT NULL)""",
    # An event id another agency's record holds already, and who else sent under it
    # (_store_taken): since 2026-12-07; a table only, which an older desk leaves alone.
    """CREATE TABLE IF NOT EXISTS desk_taken_ids (
        event_id TEXT NOT NULL, sender TEXT NOT NULL, PRIMARY KEY (event_id, sender))""",
    # The party whose desk this is: records carry no party of their own.
    "CREATE TABLE IF NOT EXISTS desk_owner (party TEXT PRIMARY KEY)",
    # A child's key before 2026-12-05 (legacy) and its key now: see DeskStore.rekey_children.
    """CREATE TABLE IF NOT EXISTS desk_child_aliases (
        legacy TEXT PRIMARY KEY, child TEXT NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS desk_migrations (name TEXT PRIMARY KEY, done_at TEXT NOT NULL)",
)

#: What a flag said that a desk before 2026-12-06 did not keep: the record that triggered it,
#: the window the rule looked at, a household rule's household; and, since 2026-12-07,
#: whether the flag service takes it back once its records are withdrawn. NULL for flags
#: stored before (a flag stored before 2026-12-07 was raised by a service that did not).
_FLAG_COLUMNS = (
    ("trigger_event_id", "TEXT"),
    ("window_seconds", "INTEGER"),
    ("household", "TEXT"),
    ("withdrawable", "INTEGER"),
)


def prepare(
    query: _Query, columns: Callable[[str], Sequence[str]], *, postgresql: bool, where: str
) -> None:
    """At a desk's start: make the schema, refuse a newer desk's store, and bring an older
    desk's up to date, one desk process at a time. Another session holding a table longer
    than the store's wait (a desk process paused mid-decision, a backup) fails the start in
    one line, nothing changed that the next start does not do again."""
    with (
        held_up_fails(where),
        schema_lock(query, postgresql=postgresql),
        start_waits(query, postgresql=postgresql),
    ):
        for statement in SCHEMA:
            _create(query, statement, postgresql=postgresql)
        refuse_newer(query, where)
        migrate(query, columns, postgresql=postgresql)


def claim(query: _Query, party: str, where: str, *, postgresql: bool) -> list[str]:
    """The parties whose desk the store is, made ``party``'s first if it is nobody's yet.
    Read first: on SQLite even an insert that adds nothing takes the database's write lock,
    which a desk process paused mid-decision holds, and every start would stop behind it.
    A hold outlasting the wait fails the start in one line, as :func:`prepare` does (on
    PostgreSQL only under :func:`start_waits`: a session holding ``desk_owner``, a backup's
    restore, would otherwise stall the start for as long as it holds on)."""
    with held_up_fails(where), start_waits(query, postgresql=postgresql):
        if not (owners := _owners(query)):
            query(
                "INSERT INTO desk_owner (party) SELECT ? "
                "WHERE NOT EXISTS (SELECT 1 FROM desk_owner)",
                (party,),
            )
            owners = _owners(query)
    return owners


def _owners(query: _Query) -> list[str]:
    return [str(row[0]) for row in query("SELECT party FROM desk_owner")]


@contextlib.contextmanager
def held_up_fails(where: str) -> Iterator[None]:
    """Another session's hold outlasting the wait ends the start in one line. The holder
    may be no desk at all (a backup's dump, a session left idle in a transaction for hours),
    so it names the way to find it rather than telling the start to be tried again at once."""
    try:
        yield
    except Exception as exc:
        if not _store_locks.busy(exc):
            raise
        raise ConfigError(
            f"{where} was held by another session (a desk process mid-decision, a backup, "
            f"...) for over {_store_locks.WAIT_SECONDS} s while this desk started: start this "
            "desk again once that session ends (PostgreSQL: look in pg_stat_activity for an "
            "idle in transaction session on the desk's database)"
        ) from None


def migrate(
    query: _Query,
    columns: Callable[[str], Sequence[str]],
    *,
    postgresql: bool,
) -> None:
    """Bring a store made by an older desk up to :data:`SCHEMA` (after it has run):
    ``columns`` names a table's columns."""
    have = set(columns("desk_flags"))
    for name, kind in _FLAG_COLUMNS:
        if name not in have:
            _add_column(query, columns, "desk_flags", name, kind, postgresql=postgresql)
    if "child_nhs" not in columns("desk_records"):
        _add_column(query, columns, "desk_records", "child_nhs", "INTEGER", postgresql=postgresql)
    # After the column: a store made before it has none to index.
    _create(
        query,
        "CREATE INDEX IF NOT EXISTS desk_records_by_child_nhs ON desk_records (child_nhs, hidden)",
        postgresql=postgresql,
    )
    _fill_child_nhs(query)
    if _index_made(query, _store_locks.PUBLISHED_ONCE_INDEX, postgresql=postgresql):
        # It refuses every copy, whichever desk records it: nothing to remove, and no lock
        # on the decisions at every start (it would wait for any desk's decision under way).
        _note(query, PUBLISHED_ONCE)
        return
    with others_kept_out(query, postgresql=postgresql):
        _published_once(query)


def _create(query: _Query, statement: str, *, postgresql: bool) -> None:
    """A ``CREATE … IF NOT EXISTS``; an index's only if it is not there: PostgreSQL's takes
    its table's lock first even then, and would wait at every start for any desk process's
    write under way on the table (one paused mid-decision: for ever)."""
    index = _INDEX_NAME.match(statement)
    if index is None or not _index_made(query, index[1], postgresql=postgresql):
        query(statement)


def _index_made(query: _Query, name: str, *, postgresql: bool) -> bool:
    """Whether the index ``name`` is there, where the schema's unqualified names go (a false
    no only costs the lock)."""
    if postgresql:
        look = "SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() AND indexname = ?"
    else:
        look = "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?"
    return bool(query(look, (name,)))


def _note(query: _Query, migration: str) -> None:
    """Record ``migration`` done, if it is not recorded yet. Read first: on SQLite even an
    insert that adds nothing takes the database's write lock, and every start (once the
    store is up to date) would stop behind a desk process paused mid-decision."""
    if query("SELECT 1 FROM desk_migrations WHERE name = ?", (migration,)):
        return
    query(
        "INSERT INTO desk_migrations (name, done_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        (migration, datetime.now(UTC).isoformat()),
    )


def _published_once(query: _Query) -> None:
    """One decision per published event: a referral or outcome recorded twice (two desk
    processes pressing Record it at once, before this index) keeps its earliest row, which
    takes over the flags the others settled, and the index then refuses a second. Run at
    every start until the index is there, like the fill above: an older desk process may
    have recorded a copy meanwhile (inside :func:`others_kept_out`, so that none is
    recorded between the removal and the index)."""
    removed, events = 0, 0
    for (event,) in query(
        "SELECT published_event FROM desk_decisions WHERE published_event IS NOT NULL "
        "GROUP BY published_event HAVING COUNT(*) > 1"
    ):
        kept, *copies = (
            str(row[0]) for row in query(
                "SELECT decision_id FROM desk_decisions WHERE published_event = ? "
                "ORDER BY decided_at, decision_id", (event,),
            )
        )  # fmt: skip
        events += 1
        for copy in copies:
            for flags in (
                "SELECT ?, flag_id FROM desk_decision_flags WHERE decision_id = ?",
                "SELECT ?, flag_id FROM desk_decisions WHERE decision_id = ? "
                "AND flag_id IS NOT NULL",
            ):
                query(
                    f"INSERT INTO desk_decision_flags (decision_id, flag_id) {flags} "
                    "ON CONFLICT (decision_id, flag_id) DO NOTHING",
                    (kept, copy),
                )
            query("DELETE FROM desk_decision_flags WHERE decision_id = ?", (copy,))
            query("DELETE FROM desk_decisions WHERE decision_id = ?", (copy,))
            removed += 1
    if removed:  # counts only: the rows name children and people
        log.warning("desk_duplicate_decisions_removed", events=events, rows=removed)
    query(
        f"CREATE UNIQUE INDEX IF NOT EXISTS {_store_locks.PUBLISHED_ONCE_INDEX} "
        "ON desk_decisions (published_event) WHERE published_event IS NOT NULL"
    )
    _note(query, PUBLISHED_ONCE)


def _add_column(
    query: _Query, columns: Callable[[str], Sequence[str]], table: str, name: str, kind: str,
    *, postgresql: bool,
) -> None:  # fmt: skip
    if postgresql:
        query(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {name} {kind}")
        return
    try:
        query(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
    except sqlite3.OperationalError as exc:
        # Another process added it since we looked: fine, if it is there now.
        if "duplicate column" not in str(exc) or name not in columns(table):
            raise


def _child_nhs(event_id: str, view: str) -> int:
    """1 if a child subject of the stored view is keyed by NHS number. A view that cannot be
    read as one is marked 0 (a record the search cannot find, the safe side) and logged by
    its event id alone: one unreadable row must not keep the desk from starting."""
    try:
        parsed = json.loads(view)
        if isinstance(parsed, dict):
            return int(view_keys_child_by_nhs_number(parsed))
    except (ValueError, TypeError, AttributeError):
        pass
    log.warning("desk_view_unreadable", event_id=event_id)
    return 0


def _fill_child_nhs(query: _Query) -> None:
    """Mark every record not yet marked with whether a child subject of it is keyed by NHS
    number, from its stored view: the records a search by NHS number can find.

    Run at every start, not only once: a record an older desk process stored while this one
    started (two processes upgraded one after the other) is unmarked, and counted as one the
    search cannot find until then. Each batch marks every row it read, so the next one reads
    the rest; another process marking the same rows marks them alike."""
    mark_child_nhs(query)
    _note(query, CHILD_NHS)


def mark_child_nhs(query: _Query) -> None:
    """Mark the records not yet marked (stored by an older desk process) from their views;
    one indexed probe when there are none."""
    while rows := query(
        "SELECT event_id, view FROM desk_records WHERE child_nhs IS NULL LIMIT ?", (_FILL_BATCH,)
    ):
        found: dict[int, list[str]] = {0: [], 1: []}
        for event_id, view in rows:
            found[_child_nhs(event_id, view)].append(event_id)
        for value, ids in found.items():
            if ids:
                marks = ", ".join("?" * len(ids))
                query(
                    f"UPDATE desk_records SET child_nhs = ? WHERE event_id IN ({marks})",  # noqa: S608  # placeholders only; values are bound
                    (value, *ids),
                )


def refuse_newer(query: _Query, where: str) -> None:
    """Refuse a store holding a migration this desk does not know (after :data:`SCHEMA` ran,
    before anything else is changed): a newer desk made it."""
    done = [str(row[0]) for row in query("SELECT name FROM desk_migrations ORDER BY name")]
    unknown = [name for name in done if name not in KNOWN_MIGRATIONS]
    if unknown:
        raise ConfigError(
            f"the desk store at {where} holds migrations this Accord does not know "
            f"({', '.join(unknown)}): a newer Accord has used it; upgrade Accord (a store a "
            "newer desk has changed is never opened by an older one)"
        )
