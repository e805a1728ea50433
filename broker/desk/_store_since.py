"""The team's "New records since a decision": which records about a child ask it to decide
again (docs/desk.md, "Flags").

A record counts unless withdrawn, or it is a hub's offer of support answering one of the
team's own referrals about the same child: that shows beside the referral and settles the
need. A referral declined or closed leaves the need with the team again, so those count, as
does an outcome of a value the desk does not know, or whose view it cannot read (shown
rather than hidden). A legacy referral decision naming no child hides nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from broker.desk._stored import OUTCOME_TYPE

__all__ = ["new_since"]

_OFFERED = "support_offered"  # broker.events.ReferralOutcome

_SQL = (
    # The outcome's value is in its view, which SQLite and PostgreSQL read differently as
    # JSON: it is read here, and only for the few answers to the team's own referrals.
    "SELECT c.child, r.received_at, d.last, CASE WHEN r.event_type = ? AND EXISTS "
    "(SELECT 1 FROM desk_decisions p WHERE p.action = 'refer' AND p.child = c.child "
    "AND p.published_event = r.reference) THEN r.view END "
    "FROM desk_record_children c JOIN desk_records r ON r.event_id = c.event_id "
    "JOIN (SELECT child, MAX(decided_at) AS last FROM desk_decisions "
    # A flag closed as withdrawn decided nothing about the child.
    "WHERE child IS NOT NULL AND action <> ? GROUP BY child) d ON d.child = c.child "
    # Both times are the desk's own clock, as UTC ISO text: they order as text.
    "WHERE r.hidden = 0 AND r.received_at > d.last"
)


def new_since(
    query: Callable[..., list[tuple[Any, ...]]], records_withdrawn: str
) -> list[tuple[str, int, datetime]]:
    """(child, how many records count, when its latest decision was recorded), newest
    arrivals first; ``records_withdrawn`` is the action that decides nothing about a child."""
    found: dict[str, tuple[int, str, str]] = {}
    for child, received, last, answer in query(_SQL, (OUTCOME_TYPE, records_withdrawn)):
        if answer is not None and _offers_support(answer):
            continue
        count, newest, _ = found.get(child, (0, received, last))
        found[child] = (count + 1, max(newest, received), last)
    ordered = sorted(sorted(found.items()), key=lambda item: item[1][1], reverse=True)
    return [(str(c), n, datetime.fromisoformat(last)) for c, (n, _, last) in ordered]


def _offers_support(view: str) -> bool:
    try:
        parsed = json.loads(view)
    except ValueError:
        return False
    return isinstance(parsed, dict) and parsed.get("outcome") == _OFFERED
