"""The disclosure log's queries about events received about a child that went to no one,
and shares decided that were never sent (``_sql``'s ``subject_records``,
``quarantined_receipts`` and ``unsent_shares`` run them).

A ``received`` record and the decisions on that event are written by one task, in one Kafka
transaction, on its own chain (``worker:<ingress topic>-<N>``, one sender's): a decision
answers a receipt only on the same chain, after it. Event ids are each sender's to choose,
so another sender's event under the same id, on its own chain, answers nothing here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator

from broker.audit import AuditKind, AuditRecord
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

# The stages after ``link`` (which audits ``received``): a quarantine at one of them after a
# receipt is of that receipt's processing. One at an earlier stage is of a later copy (a
# replay, a re-send that failed to open) and says nothing of how the receipt went.
_AFTER_RECEIPT = frozenset({"decide", "deliver"})


def _records_of(q: Query, event_ids: Collection[str], kinds: str) -> Iterator[AuditRecord]:
    """The records of ``event_ids`` of the kinds ``kinds`` (an SQL list of literals)."""
    ids = sorted(event_ids)
    for i in range(0, len(ids), 500):  # under SQLite's bound-parameter limit
        part = ids[i : i + 500]
        marks = ", ".join("?" for _ in part)
        rows = q(
            f"SELECT body FROM audit_records WHERE event_id IN ({marks}) "  # noqa: S608  # placeholders and our literals only, values are bound
            f"AND kind IN ({kinds})",
            part,
        )
        for (body,) in rows:
            yield AuditRecord.model_validate_json(body)


def quarantined_receipts(
    q: Query, receipts: Collection[tuple[str, int, str]]
) -> set[tuple[str, int]]:
    """Those of ``receipts`` (``(chain, seq, event_id)`` of ``received`` records) whose
    processing ended in quarantine: a ``quarantined`` record of the event on the same chain,
    after it, at a stage after ``link``, as ``(chain, seq)``.

    Asked of the last receipt of each event on its chain: a quarantine after it at those
    stages cannot be of an earlier copy."""
    wanted: dict[tuple[str, str], list[int]] = {}
    for chain, seq, event_id in receipts:
        wanted.setdefault((chain, event_id), []).append(seq)
    found: set[tuple[str, int]] = set()
    for rec in _records_of(q, {e for _, e in wanted}, "'quarantined'"):
        if rec.data.get("stage") not in _AFTER_RECEIPT or rec.event_id is None:
            continue
        for seq in wanted.get((rec.chain, rec.event_id), ()):
            if rec.seq > seq:
                found.add((rec.chain, seq))
    return found


def unsent_shares(q: Query, shares: Collection[tuple[str, int, str, str]]) -> set[tuple[str, int]]:
    """Those of ``shares`` (``(chain, seq, event_id, recipient)`` of decisions that shared)
    whose event was quarantined after them on their chain, at a stage after ``link``, with
    no delivery of it to that recipient between, as ``(chain, seq)``: nothing was sent. A
    delivery between says it was, whatever a later quarantine of that id is of."""
    stops: dict[tuple[str, str], list[int]] = {}
    sent: dict[tuple[str, str, str | None], list[int]] = {}
    ids = {e for _, _, e, _ in shares}
    for rec in _records_of(q, ids, "'quarantined', 'delivered'") if ids else ():
        if rec.event_id is None:
            continue
        if rec.kind is AuditKind.DELIVERED:
            sent.setdefault((rec.chain, rec.event_id, rec.party), []).append(rec.seq)
        elif rec.data.get("stage") in _AFTER_RECEIPT:
            stops.setdefault((rec.chain, rec.event_id), []).append(rec.seq)
    return {
        (chain, seq)
        for chain, seq, event_id, recipient in shares
        if any(
            stop > seq
            and not any(seq < d < stop for d in sent.get((chain, event_id, recipient), ()))
            for stop in stops.get((chain, event_id), ())
        )
    }
