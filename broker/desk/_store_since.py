"""The team's "New records since a decision": which records about a child ask it to decide
again (docs/desk.md, "Flags").

A record counts unless withdrawn, or it is a hub's offer of support answering one of the
team's own referrals about the same child: that shows beside the referral and settles the
need. A referral declined or closed leaves the need with the team again, so those count, as
does an outcome of a value the desk does not know, or whose view it cannot read (shown
rather than hidden). A legacy referral decision naming no child hides nothing.

Counted in SQL, one row per child, as the home page asks on every load, with the newest
arrival that is not an answer to one of the team's own referrals; only those answers are read
here too (the outcome is in the view, which SQLite and PostgreSQL read differently as JSON),
and the offers of support among them taken off: the newest arrival left is the newer of the
two, so two statements whatever the number of children. The statements read one snapshot
(``new_since_in_snapshot``), so an answer is taken off only a count it is in.

Both are served by indexes (``_store_schema``; docs/performance.md, "The desk's new-since
query at scale"): SQLite's count reads only covering indexes, and the answers are found from
the referral decisions, each child's latest decision looked up by its index.
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
# An answer to one of the team's own referrals about the same child. A published event id is
# one decision's (desk_decisions_published_once), so the LEFT JOIN adds no row: a count of
# rows is a count of records.
_COUNTED = (
    "SELECT c.child, COUNT(*), MAX(CASE WHEN p.decision_id IS NULL THEN r.received_at END), "  # noqa: S608  # constants
    "d.last FROM desk_record_children c JOIN desk_records r ON r.event_id = c.event_id "
    f"JOIN ({_LAST}) d ON d.child = c.child "
    "LEFT JOIN desk_decisions p ON p.published_event = r.reference AND p.action = 'refer' "
    "AND p.child = c.child AND r.event_type = ? "
    # Both times are the desk's own clock, as UTC ISO text: they order as text.
    "WHERE r.hidden = 0 AND r.received_at > d.last GROUP BY c.child, d.last"
)
# The same answers, found from the team's referral decisions by the indexed reference. Each
# child's latest decision is looked up per answer (desk_decisions_by_child), not joined:
# PostgreSQL expects about one row where an answer names its referral's child and, joining
# the grouped decisions in a nested loop, took minutes at 300,000 records. CROSS JOIN keeps
# SQLite to this order (else it walks every record, as the count does).
_ANSWERS = (
    "SELECT c.child, r.event_id, r.received_at, r.view FROM desk_decisions p "
    "CROSS JOIN desk_records r CROSS JOIN desk_record_children c "
    "WHERE p.action = 'refer' AND r.reference = p.published_event AND r.event_type = ? "
    "AND c.event_id = r.event_id AND c.child = p.child AND r.hidden = 0 AND r.received_at > "
    "(SELECT MAX(x.decided_at) FROM desk_decisions x WHERE x.child = p.child AND x.action <> ?)"
)


def new_since(
    query: Callable[..., list[tuple[Any, ...]]], records_withdrawn: str
) -> list[tuple[str, int, datetime]]:
    """(child, how many records count, when its latest decision was recorded), newest
    arrivals first; ``records_withdrawn`` is the action that decides nothing about a child."""
    found = {
        str(child): (int(count), None if other is None else str(other), str(last))
        for child, count, other, last in query(_COUNTED, (records_withdrawn, OUTCOME_TYPE))
    }
    taken: dict[str, set[str]] = {}  # child -> the event ids of its offers of support
    kept: dict[str, str] = {}  # child -> the newest of its answers that still count
    for answer in query(_ANSWERS, (OUTCOME_TYPE, records_withdrawn)):
        child, event_id, received, view = (str(v) for v in answer)
        if child not in found:
            continue
        if _offers_support(view):
            taken.setdefault(child, set()).add(event_id)
        else:
            kept[child] = max(kept.get(child, ""), received)
    counted: dict[str, tuple[int, str, str]] = {}
    for child, (count, other, last) in found.items():
        if (left := count - len(taken.get(child, ()))) > 0:
            # One of the two is there: a record left is an answer kept or another record.
            newest = max(at for at in (other, kept.get(child)) if at is not None)
            counted[child] = (left, newest, last)
    ordered = sorted(sorted(counted.items()), key=lambda item: item[1][1], reverse=True)
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
