"""How the desk store keeps two writers apart: desk processes making or migrating the schema at
once, and two decisions settling the same flag at once (two desk processes on one store, or
any caller that did not serialise them)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = ["one_transaction", "schema_lock", "settled_among"]

_SCHEMA_LOCK = 0x4163636F7264 + 16  # 'Accord', apart from the audit index's two

Query = Callable[..., list[tuple[Any, ...]]]


@contextlib.contextmanager
def schema_lock(q: Query, *, postgresql: bool) -> Iterator[None]:
    """One desk process at a time makes or migrates the schema: on PostgreSQL two identical
    CREATE ... IF NOT EXISTS at once can both pass the check, and one fails (two desk
    processes started together). SQLite's own locks serialise them."""
    if not postgresql:
        yield
        return
    q("SELECT pg_advisory_lock(?)", (_SCHEMA_LOCK,))
    try:
        yield
    finally:
        q("SELECT pg_advisory_unlock(?)", (_SCHEMA_LOCK,))


@contextlib.contextmanager
def one_transaction(conn: Any, *, postgresql: bool) -> Iterator[None]:
    """The statements inside as one transaction on an autocommit connection: all or none.
    SQLite's BEGIN IMMEDIATE takes the database's write lock first, so what is read inside
    is what the writes land on: another process's write waits (or fails) until this ends."""
    if postgresql:
        with conn.transaction():
            yield
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def settled_among(q: Query, flag_ids: Sequence[str], *, postgresql: bool) -> tuple[str, ...]:
    """Which of ``flag_ids`` a decision settles already (as ``DeskStore.flags`` counts it),
    read inside :func:`one_transaction`. On PostgreSQL the flags' rows are locked first: a
    second transaction settling one waits here until the first commits, then reads its
    decision (each statement reads what was committed before it)."""
    if postgresql:
        for flag_id in sorted(flag_ids):  # one order for all: no two wait on each other
            q("SELECT flag_id FROM desk_flags WHERE flag_id = ? FOR UPDATE", (flag_id,))
    return tuple(
        flag_id
        for flag_id in flag_ids
        if q(
            "SELECT 1 FROM desk_decision_flags WHERE flag_id = ? "
            "UNION ALL SELECT 1 FROM desk_decisions WHERE flag_id = ?",
            (flag_id, flag_id),
        )
    )
