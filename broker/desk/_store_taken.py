"""Event ids two agencies chose alike: the desk keeps the first agency's record under the id,
and remembers the id as taken by the others.

Agencies choose their own event ids. The desk's pages, access acknowledgements and
withdrawals name a record by event id alone, so it holds one record per id and says so
(``desk_event_id_taken``). What it must never do is show that record as the other's: a flag
the flag service raised about the second agency's child names the id too (the service reads
the delivery topic itself), and the child's page would find the first agency's record, about
another child, under it. So the id is kept here, and a flag's records leave it out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import structlog

__all__ = ["taken_among", "taken_by_another"]

log = structlog.get_logger("accord.desk")

_Query = Callable[..., list[tuple[Any, ...]]]
_IN_BATCH = 500  # ids per IN (...): within SQLite's bound on parameters


def taken_by_another(q: _Query, event_id: str, sender: str) -> bool:
    """Whether ``event_id`` is stored already as another agency's record (then noted, and
    said); False for the same record again."""
    [(stored,)] = q("SELECT sender FROM desk_records WHERE event_id = ?", (event_id,))
    if stored == sender:
        return False
    q(
        "INSERT INTO desk_taken_ids (event_id, sender) VALUES (?, ?) "
        "ON CONFLICT (event_id, sender) DO NOTHING",
        (event_id, sender),
    )
    log.warning("desk_event_id_taken", event_id=event_id, sender=sender, stored=stored)
    return True


def taken_among(q: _Query, event_ids: Iterable[str]) -> set[str]:
    """Those of ``event_ids`` another agency also sent under: their stored record is not
    necessarily the one a flag about a child counted."""
    ids = list(dict.fromkeys(event_ids))
    taken: set[str] = set()
    for i in range(0, len(ids), _IN_BATCH):
        batch = ids[i : i + _IN_BATCH]
        marks = ", ".join("?" * len(batch))
        rows = q(f"SELECT event_id FROM desk_taken_ids WHERE event_id IN ({marks})", batch)  # noqa: S608  # placeholders only; values are bound
        taken.update(str(r[0]) for r in rows)
    return taken
