"""A school desk's Operation Encompass notices: who first opened each, and who pressed
**Acknowledge as read**.

The central side (``accord audit report``'s late notices, the indexer's
``accord_audit_encompass_overdue``) counts a notice read at the school's first access
acknowledgement for it, which the desk sends when a signed-in person opens it: so the desk
keeps that opening too, and its LATE follows it. An opening is kept only once its
acknowledgement was confirmed sent (``PageKit.acknowledged``): one Kafka refused, or may yet
commit (``SendUnconfirmed``), is not, and the notice stays unread here. The desk errs towards
late, never towards read, with one exception it cannot see: the central side times the
opening by the worker's ``opened`` record, written when the worker reads the
acknowledgement, so while the worker is stopped or behind, a notice the desk shows opened
before its deadline may be counted late there (the indexer's alert still fires).

The button is kept apart: a person's explicit record that they read it, shown as such.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from broker.desk._stored import as_text

__all__ = ["acknowledge", "acknowledged", "first_opened", "note_opened"]

_Query = Callable[..., list[tuple[Any, ...]]]


def note_opened(q: _Query, event_ids: Iterable[str], by: str, at: datetime) -> None:
    """``by`` opened these notices at ``at``, their acknowledgements sent: the first
    opening of each is kept, a later one changes nothing. Read first, written only for a
    notice not opened before: on SQLite even an insert that does nothing takes the write
    lock, and every later opening would wait on (or fail behind) another page's write."""
    ids = list(dict.fromkeys(event_ids))
    marks = ", ".join("?" * len(ids))
    kept = {row[0] for row in q(
        f"SELECT event_id FROM desk_encompass_opened WHERE event_id IN ({marks})", tuple(ids)  # noqa: S608  # placeholders only
    )} if ids else set()  # fmt: skip
    for event_id in ids:
        if event_id in kept:
            continue
        q(
            "INSERT INTO desk_encompass_opened (event_id, opened_by, opened_at) "
            "VALUES (?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
            (event_id, by, as_text(at)),
        )


def first_opened(q: _Query, event_id: str) -> tuple[str, datetime] | None:
    """Who first opened the notice and when; None if nobody has (as far as this desk knows)."""
    rows = q(
        "SELECT opened_by, opened_at FROM desk_encompass_opened WHERE event_id = ?", (event_id,)
    )
    return (rows[0][0], datetime.fromisoformat(rows[0][1])) if rows else None


def acknowledge(q: _Query, event_id: str, by: str, at: datetime) -> bool:
    """**Acknowledge as read** pressed: kept once, by whoever did first (True if this was)."""
    rows = q(
        "INSERT INTO desk_encompass_acks (event_id, acknowledged_by, acknowledged_at) "
        "VALUES (?, ?, ?) ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
        (event_id, by, as_text(at)),
    )
    return bool(rows)


def acknowledged(q: _Query, event_id: str) -> tuple[str, datetime] | None:
    """Who pressed **Acknowledge as read** for the notice and when; None if nobody has."""
    rows = q(
        "SELECT acknowledged_by, acknowledged_at FROM desk_encompass_acks WHERE event_id = ?",
        (event_id,),
    )
    return (rows[0][0], datetime.fromisoformat(rows[0][1])) if rows else None
