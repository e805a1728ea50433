"""The disclosure log's queries about events received about a child that went to no one,
and shares decided that were never sent (``_sql``'s ``subject_records``,
``quarantined_receipts`` and ``unsent_shares`` run them).

A ``received`` record and the decisions on that event are written by one task, in one Kafka
transaction, on its own chain (``worker:<ingress topic>-<N>``, one sender's): a decision
answers a receipt only on the same chain, after it. Event ids are each sender's to choose,
so another sender's event under the same id, on its own chain, answers nothing here.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from typing import Any

from broker.governance._sql_write import Query

# The receipts of the subject's events on which no decision about them followed. By the
# event's own decisions (a few, by the event id index), each checked for the subject: not by
# walking every record of the subject's per receipt. ``|| ''`` and ``+ 0`` keep either
# database off the primary key (chain, seq), which would walk the rest of the chain from
# the receipt on.
RECEIVED_UNDECIDED = (
    "SELECT r.body FROM audit_records r JOIN audit_subjects s "
    "ON s.chain = r.chain AND s.seq = r.seq WHERE s.subject_key = ? "
    "AND r.kind = 'received' AND NOT EXISTS (SELECT 1 FROM audit_records d "
    "WHERE d.event_id = r.event_id AND d.kind = 'decided' AND d.chain || '' = r.chain "
    "AND d.seq + 0 > r.seq AND EXISTS (SELECT 1 FROM audit_subjects ds "
    "WHERE ds.subject_key = ? AND ds.chain = d.chain AND ds.seq = d.seq))"
)

# The receipts whose envelopes verified under one signing key (``signer_key_id``): by kind
# and time (the (kind, at) index), then the body. The body is canonical JSON (no spaces, one
# spelling per value), so a substring match on it is exact; both databases speak LIKE, not
# each other's JSON functions. The caller checks the parsed value too: LIKE's ``_`` in the
# member's name matches any character.
RECEIVED_SIGNED_BY = (
    "SELECT body FROM audit_records WHERE kind = 'received' AND at >= ? AND at < ? "
    "AND body LIKE ? ORDER BY at, chain, seq"
)


def signed_by_pattern(key_id: str) -> str:
    """RECEIVED_SIGNED_BY's pattern for ``key_id`` (hex: no LIKE wildcard of its own)."""
    return f'%"signer_key_id":"{key_id}"%'


# The stages after ``link`` (which audits ``received``): a quarantine at one of them after a
# receipt is of that receipt's processing. One at an earlier stage is of a later copy (a
# replay, a re-send that failed to open) and says nothing of how the receipt went.
_AFTER_RECEIPT = frozenset({"decide", "deliver"})


def _rows_of(
    q: Query, select: str, event_ids: Collection[str], kind: str
) -> Iterator[tuple[Any, ...]]:
    """``select`` (columns of ``audit_records``) of the records of ``event_ids`` of ``kind``
    (an SQL literal of ours)."""
    ids = sorted(event_ids)
    for i in range(0, len(ids), 500):  # under SQLite's bound-parameter limit
        part = ids[i : i + 500]
        marks = ", ".join("?" for _ in part)
        yield from q(
            f"SELECT {select} FROM audit_records WHERE event_id IN ({marks}) "  # noqa: S608  # placeholders and our literals only, values are bound
            f"AND kind = {kind}",
            part,
        )


def _late_quarantines(q: Query, event_ids: Collection[str]) -> dict[tuple[str, str], list[int]]:
    """The ``quarantined`` records of ``event_ids`` at a stage after ``link``, as their seqs
    by ``(chain, event_id)``. Only the stage needs a body: quarantines are few, and no other
    record's body is read."""
    found: dict[tuple[str, str], list[int]] = {}
    for chain, seq, event_id, body in _rows_of(
        q, "chain, seq, event_id, body", event_ids, "'quarantined'"
    ):
        data = json.loads(body).get("data")
        if isinstance(data, dict) and data.get("stage") in _AFTER_RECEIPT:
            found.setdefault((chain, event_id), []).append(int(seq))
    return found


def quarantined_receipts(
    q: Query, receipts: Collection[tuple[str, int, str]]
) -> set[tuple[str, int]]:
    """Those of ``receipts`` (``(chain, seq, event_id)`` of ``received`` records) whose
    processing ended in quarantine: a ``quarantined`` record of the event on the same chain,
    after it, at a stage after ``link``, as ``(chain, seq)``.

    Asked of the last receipt of each event on its chain: a quarantine after it at those
    stages cannot be of an earlier copy."""
    stops = _late_quarantines(q, {e for _, _, e in receipts})
    return {
        (chain, seq)
        for chain, seq, event_id in receipts
        if any(stop > seq for stop in stops.get((chain, event_id), ()))
    }


def unsent_shares(q: Query, shares: Collection[tuple[str, int, str, str]]) -> set[tuple[str, int]]:
    """Those of ``shares`` (``(chain, seq, event_id, recipient)`` of decisions that shared)
    whose event was quarantined after them on their chain, at a stage after ``link``, with
    no delivery of it to that recipient between, as ``(chain, seq)``: nothing was sent. A
    delivery between says it was, whatever a later quarantine of that id is of.

    Deliveries are looked up only for the events quarantined after a share, and read from
    the columns (a child's log may list thousands of deliveries, and most events none)."""
    stops = _late_quarantines(q, {e for _, _, e, _ in shares})
    stopped = [
        (chain, seq, event_id, recipient, later)
        for chain, seq, event_id, recipient in shares
        if (later := [s for s in stops.get((chain, event_id), ()) if s > seq])
    ]
    if not stopped:
        return set()
    sent: dict[tuple[str, str, str | None], list[int]] = {}
    for chain, seq, event_id, party in _rows_of(
        q, "chain, seq, event_id, party", {e for _, _, e, _, _ in stopped}, "'delivered'"
    ):
        sent.setdefault((chain, event_id, party), []).append(int(seq))
    # A delivery before the first quarantine after the share is before every later one too.
    return {
        (chain, seq)
        for chain, seq, event_id, recipient, later in stopped
        if not any(seq < d < min(later) for d in sent.get((chain, event_id, recipient), ()))
    }


def delivered_after(
    q: Query, receipts: Collection[tuple[str, int, str]]
) -> dict[tuple[str, int], tuple[str, ...]]:
    """The parties each of ``receipts`` (``(chain, seq, event_id)`` of ``received`` records)
    was delivered to, by ``(chain, seq)``: the ``delivered`` records of its event on its
    chain after it and before the next receipt of that event there (a copy re-sent after a
    quarantine is a receipt of its own). Read from the columns, no body."""
    events = {e for _, _, e in receipts}
    asked = {(chain, seq) for chain, seq, _ in receipts}
    # Every receipt of those events, whichever key signed it: a copy re-sent under another
    # key after a quarantine, and what was delivered after it, is not the asked key's.
    later: dict[tuple[str, str], list[int]] = {}
    for chain, seq, event_id in receipts:
        later.setdefault((chain, event_id), []).append(seq)
    for chain, seq, event_id, _ in _rows_of(q, "chain, seq, event_id, party", events,
                                            "'received'"):  # fmt: skip
        later.setdefault((str(chain), str(event_id)), []).append(int(seq))
    found: dict[tuple[str, int], list[str]] = {}
    for chain, seq, event_id, party in sorted(
        _rows_of(q, "chain, seq, event_id, party", events, "'delivered'"),
        key=lambda row: (str(row[0]), int(row[1])),
    ):
        before = [r for r in later.get((chain, event_id), ()) if r < int(seq)]
        if before and party is not None and (chain, max(before)) in asked:
            found.setdefault((chain, max(before)), []).append(str(party))
    return {key: tuple(parties) for key, parties in found.items()}
