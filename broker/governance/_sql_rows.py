"""Small pieces of the audit index's SQL that need no connection: a decided body's
agreements, a review row's shape, the refusal of an index a newer Accord migrated."""

from __future__ import annotations

import json
from typing import Any

from broker.errors import AuditError
from broker.governance._schema import MIGRATIONS
from broker.governance._store import ENCOMPASS_EVENT_TYPE, ENCOMPASS_RECIPIENT_KIND, ReviewRow

__all__ = [
    "ENCOMPASS_LIKE",
    "ENCOMPASS_UNSENT",
    "SEVERAL_GROUNDS",
    "agreements_of",
    "refuse_newer",
    "review_row",
]

# A body whose grounds name two clauses or more: in canonical JSON (RFC 8785: keys sorted, no
# spaces) each ground opens with "agreement_id", so this is found between two grounds and
# nowhere else in a decision. Bound, not inlined: psycopg would read "%" as a placeholder.
SEVERAL_GROUNDS = '%},{"agreement_id":%'

# The decisions that would have been Encompass notices (``_store.is_encompass_notice``) but
# for the school having no key to seal to: refused, reason recipient-key-unavailable. The
# reason narrows to a few rows before a body is matched (canonical JSON: the match is
# exact, as migration 3's); the patterns are bound, for psycopg's sake.
ENCOMPASS_UNSENT = (
    "SELECT event_id, party, at FROM audit_records WHERE kind = 'decided' "
    "AND outcome = 'not_shared' AND reason = 'recipient-key-unavailable' "
    "AND event_id IS NOT NULL AND party IS NOT NULL AND at >= ? AND at < ? "
    "AND body LIKE ? AND body LIKE ? ORDER BY at, party, event_id"
)
ENCOMPASS_LIKE = (
    f'%"event_type":"{ENCOMPASS_EVENT_TYPE}"%',
    f'%"recipient_kind":"{ENCOMPASS_RECIPIENT_KIND}"%',
)


def agreements_of(body: str) -> list[str | None]:
    """The distinct agreements of a ``decided`` body's grounds, in order."""
    grounds = json.loads(body).get("data", {}).get("grounds")
    found = [g.get("agreement_id") for g in grounds or () if isinstance(g, dict)]
    return list(dict.fromkeys(a for a in found if isinstance(a, str)))


def review_row(row: tuple[Any, ...]) -> ReviewRow:
    """A ``SELECT event_id, party, reviewed_by, finding, reference, note, reviewed_at`` row."""
    e, p, by, finding, ref, note, at = row[:7]
    return str(e), str(p), str(by), str(finding), str(ref), str(note), str(at)


def refuse_newer(version: int, where: str) -> None:
    """An index a newer Accord has migrated is not read or written by this one: its tables may
    mean what this code does not know (a restored older image, a rollback after an upgrade)."""
    if version > len(MIGRATIONS):
        raise AuditError(
            f"the audit index at {where} is at schema version {version}; this Accord knows "
            f"{len(MIGRATIONS)}: upgrade Accord (an index a newer Accord has migrated is never "
            "opened by an older one)"
        )
