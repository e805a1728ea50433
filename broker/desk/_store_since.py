"""The team's "New records since a decision": which records about a child ask it to decide
again (docs/desk.md, "Flags").

A record counts unless withdrawn, or it is a hub's offer of support answering one of the
team's own referrals about the same child: that shows beside the referral and settles the
need. A referral declined or closed leaves the need with the team again, so those count, as
does an outcome of a value the desk does not know, or whose view it cannot read (shown
rather than hidden). A legacy referral decision naming no child hides nothing.

Counted in SQL, one row per child, as the home page asks on every load; only the answers
to the team's own referrals are read here too (the outcome is in the view, which SQLite and
PostgreSQL read differently as JSON), and the offers of support among them taken off. The
statements read one snapshot (``new_since_in_snapshot``), so an answer is taken off only a
count it is in.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from broker.desk._stored import OUTCOME_TYPE
from broker.events import ReferralOutcome

__all__ = ["new_since", "new_since_in_snapshot"]

# Typed as the event's outcome, so that mypy holds it to broker.events' values.
_OFFERED: Final[ReferralOutcome] = "support_offered"

# The latest decision about each child (a flag closed as withdrawn decided nothing about it).
_LAST = (
    "SELECT child, MAX(decided_at) AS last FROM desk_decisions "
    "WHERE child IS NOT NULL AND action <> ? GROUP BY child"
)
_COUNTED = (
    f"SELECT c.child, COUNT(*), MAX(r.received_at), d.last FROM desk_record_children c "  # noqa: S608  # constants
    f"JOIN desk_records r ON r.event_id = c.event_id JOIN ({_LAST}) d ON d.child = c.child "
    # Both times are the desk's own clock, as UTC ISO text: they order as text.
    "WHERE r.hidden = 0 AND r.received_at > d.last GROUP BY c.child, d.last"
)
# Found from the team's referral decisions, by the indexed reference: a published event id
# is one decision's (desk_decisions_published_once), so each (child, record) comes once.
# CROSS JOIN keeps SQLite to that order (else it walks every record, as the count does);
# PostgreSQL plans it as the inner join it is.
_ANSWERS = (
    "SELECT c.child, r.event_id, r.received_at, r.view FROM desk_decisions p "  # noqa: S608  # constants
    "CROSS JOIN desk_records r CROSS JOIN desk_record_children c "
    f"CROSS JOIN ({_LAST}) d "
    "WHERE p.action = 'refer' AND r.reference = p.published_event AND r.event_type = ? "
    "AND c.event_id = r.event_id AND c.child = p.child AND d.child = p.child "
    "AND r.hidden = 0 AND r.received_at > d.last"
)
# A child's newest records since its latest decision: enough of them to pass those taken off.
_NEWEST = (
    "SELECT r.event_id, r.received_at FROM desk_record_children c "
    "JOIN desk_records r ON r.event_id = c.event_id "
    "WHERE c.child = ? AND r.hidden = 0 AND r.received_at > ? "
    "ORDER BY r.received_at DESC LIMIT ?"
)


def new_since(
    query: Callable[..., list[tuple[Any, ...]]], records_withdrawn: str
) -> list[tuple[str, int, datetime]]:
    """(child, how many records count, when its latest decision was recorded), newest
    arrivals first; ``records_withdrawn`` is the action that decides nothing about a child."""
    found = {
        str(child): (int(count), str(newest), str(last))
        for child, count, newest, last in query(_COUNTED, (records_withdrawn,))
    }
    offered: dict[str, dict[str, str]] = {}  # child -> {event id: received at}
    for child, event_id, received, view in query(_ANSWERS, (records_withdrawn, OUTCOME_TYPE)):
        if str(child) in found and _offers_support(view):
            offered.setdefault(str(child), {})[str(event_id)] = str(received)
    for child, taken in offered.items():
        count, newest, last = found[child]
        if count <= len(taken):
            del found[child]
            continue
        if newest in taken.values():  # the newest was taken off: the next one orders it
            rows = query(_NEWEST, (child, last, len(taken) + 1))
            newest = next((str(at) for eid, at in rows if str(eid) not in taken), newest)
        found[child] = (count - len(taken), newest, last)
    ordered = sorted(sorted(found.items()), key=lambda item: item[1][1], reverse=True)
    return [(c, n, datetime.fromisoformat(last)) for c, (n, _, last) in ordered]


def new_since_in_snapshot(
    query: Callable[..., list[tuple[Any, ...]]], records_withdrawn: str, *, postgresql: bool
) -> list[tuple[str, int, datetime]]:
    """``new_since``, its statements in one read transaction on the store's autocommit
    connection: an answer another desk process stores between them is in the count and the
    answers both, or in neither, whatever its received_at (clocks do not only move forward).
    PostgreSQL's read committed would give each statement its own snapshot, hence repeatable
    read; SQLite's WAL keeps one from the first read, and writers are not held up by it."""
    query("BEGIN ISOLATION LEVEL REPEATABLE READ" if postgresql else "BEGIN")
    try:
        found = new_since(query, records_withdrawn)
        # Read only: nothing to keep, but it ends the snapshot. Inside the try, as in
        # _store_locks.one_transaction: a COMMIT that failed would leave the one shared
        # connection in this transaction for good.
        query("COMMIT")
    except BaseException:
        # A ROLLBACK that fails too (none open) must not hide why the reads failed.
        with contextlib.suppress(Exception):
            query("ROLLBACK")
        raise
    return found


def _offers_support(view: str) -> bool:
    try:
        parsed = json.loads(view)
    except ValueError:
        return False
    return isinstance(parsed, dict) and parsed.get("outcome") == _OFFERED
