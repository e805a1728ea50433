"""The audit index's queries that run on every indexer pass use the indexes made for them.

A query that walks every record of a kind for each row it returns costs nothing in a small
test and minutes in a year's index, with the indexer's event loop blocked meanwhile (it
stopped answering its probes and SIGTERM). SQLite's plans are checked here; timing is
``make bench``'s business, never a test's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from broker.governance import Window
from broker.governance._dialects import open_store


def _plans(store: object, run: object) -> list[str]:
    conn = store._conn  # type: ignore[attr-defined]  # the SQLite connection under test
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    try:
        run()  # type: ignore[operator]
    finally:
        conn.set_trace_callback(None)
    return [
        row[3]
        for sql in seen
        if sql.lstrip().upper().startswith("SELECT")
        for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")
    ]


def test_unread_encompass_notices_find_their_openings_by_event_and_school(tmp_path: Path) -> None:
    """Each notice's first opening is looked up by (event_id, party), not by walking every
    ``opened`` record in time order (SQLite's MIN optimisation on the (kind, at) index)."""
    store = open_store(None, home=tmp_path)
    window = Window(until=datetime(2026, 12, 6, tzinfo=UTC))
    plans = _plans(store, lambda: store.encompass_notices(window, unacknowledged=True))
    lookups = [p for p in plans if p.startswith("SEARCH o ")]
    assert lookups, plans
    assert all("audit_records_event_party" in p for p in lookups), plans
