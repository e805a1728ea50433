"""The reports' and the disclosure log's reads of the audit index, in the portable SQL of
``_sql`` (whose :class:`SqlAuditStore` they are part of, as its base): only ``SELECT``s,
run through its ``_q`` on SQLite or PostgreSQL alike.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from broker.audit import AuditRecord
from broker.governance._sql_received import (
    RECEIVED_SIGNED_BY,
    RECEIVED_UNDECIDED,
    delivered_after,
    quarantined_receipts,
    signed_by_pattern,
    unsent_shares,
)
from broker.governance._sql_rows import (
    ENCOMPASS_LIKE,
    ENCOMPASS_UNSENT,
    SEVERAL_GROUNDS,
    agreements_of,
    review_row,
)
from broker.governance._store import NoticeRow, OverrideReview, Window, parse_sql_time


class SqlQueries:
    """What :class:`SqlAuditStore` answers the reports, the console and a subject access
    request with; kept apart from its schema, indexing and verification."""

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError  # SqlAuditStore's, on either dialect's connection

    def _records(self, sql: str, params: Sequence[Any] = ()) -> list[AuditRecord]:
        # The reports' rows: every body was read strictly (read_record) when it was indexed,
        # and verify --db reads them so again; here, per row of a report, the plain parse
        # (a quarter of the cost) gives the same record.
        return [AuditRecord.model_validate_json(r[0]) for r in self._q(sql, params)]

    def subject_records(self, subject_key: str) -> list[AuditRecord]:
        named = self._records(
            "SELECT r.body FROM audit_records r JOIN audit_subjects s "
            "ON s.chain = r.chain AND s.seq = r.seq "
            "WHERE s.subject_key = ? AND r.kind IN ('decided', 'delivered', 'consent_recorded', "
            "'consent_refused', 'consent_withdrawn_notice')",
            (subject_key,),
        )
        # An access acknowledgement names no subject: it joins on the (event, recipient)
        # pairs whose shared view held this subject.
        opened = self._records(
            "SELECT o.body FROM audit_records o WHERE o.kind = 'opened' AND EXISTS ("
            "SELECT 1 FROM audit_records d JOIN audit_subjects s "
            "ON s.chain = d.chain AND s.seq = d.seq WHERE s.subject_key = ? "
            "AND d.kind = 'decided' AND d.event_id = o.event_id AND d.party = o.party "
            "AND d.outcome IN ('shared', 'shared_override'))",
            (subject_key,),
        )
        # An event received about the subject on which no decision about them was taken
        # (nothing in it went to anyone about them): the log must still say it came. With a
        # decision, that decision's line says it.
        received = self._records(RECEIVED_UNDECIDED, (subject_key, subject_key))
        return named + opened + received

    def quarantined_receipts(
        self, receipts: Collection[tuple[str, int, str]]
    ) -> set[tuple[str, int]]:
        return quarantined_receipts(self._q, receipts)

    def unsent_shares(self, shares: Collection[tuple[str, int, str, str]]) -> set[tuple[str, int]]:
        return unsent_shares(self._q, shares)

    def received_signed_by(self, key_id: str, window: Window) -> list[AuditRecord]:
        found = self._records(RECEIVED_SIGNED_BY, (*window.bounds(), signed_by_pattern(key_id)))
        return [r for r in found if r.data.get("signer_key_id") == key_id]

    def delivered_after(
        self, receipts: Collection[tuple[str, int, str]]
    ) -> dict[tuple[str, int], tuple[str, ...]]:
        return delivered_after(self._q, receipts)

    def decision_counts(self, window: Window) -> list[tuple[str | None, str, str, str | None, int]]:
        # A decision counts once under each agreement of its grounds (docs/governance.md).
        # Only the body lists them: the few bodies with several are read, one by one.
        rows = self._q(
            "SELECT agreement_id, party, outcome, reason, several, COUNT(*) FROM (SELECT "
            "agreement_id, party, outcome, reason, CASE WHEN body LIKE ? THEN body END AS "
            "several FROM audit_records WHERE kind = 'decided' AND at >= ? AND at < ?) d "
            "GROUP BY agreement_id, party, outcome, reason, several",
            (SEVERAL_GROUNDS, *window.bounds()),
        )
        counts: Counter[tuple[str | None, str, str, str | None]] = Counter()
        for a, p, o, r, body, n in rows:
            for agreement in (agreements_of(body) if body else None) or [a]:
                counts[(agreement, str(p), str(o), r)] += int(n)
        return [(*key, n) for key, n in counts.items()]

    def pending_overrides(self) -> list[AuditRecord]:
        return self._records(
            "SELECT d.body FROM audit_records d WHERE d.kind = 'decided' "
            "AND d.outcome = 'shared_override' AND NOT EXISTS (SELECT 1 FROM override_reviews v "
            "WHERE v.event_id = d.event_id AND v.party = d.party) ORDER BY d.at, d.chain, d.seq"
        )

    def quarantine_counts(self, window: Window) -> list[tuple[str, int]]:
        rows = self._q(
            "SELECT reason, COUNT(*) FROM audit_records WHERE kind = 'quarantined' "
            "AND at >= ? AND at < ? GROUP BY reason ORDER BY reason",
            window.bounds(),
        )
        return [(str(r), int(n)) for r, n in rows]

    def quarantined(self, window: Window) -> list[AuditRecord]:
        return self._records(
            "SELECT body FROM audit_records WHERE kind = 'quarantined' "
            "AND at >= ? AND at < ? ORDER BY at, chain, seq",
            window.bounds(),
        )

    def refused_counts(self) -> list[tuple[str, int]]:
        rows = self._q("SELECT reason, COUNT(*) FROM audit_refused GROUP BY reason ORDER BY reason")
        return [(str(r), int(n)) for r, n in rows]

    def decisions_per_day(self, window: Window) -> list[tuple[str, str, int]]:
        rows = self._q(
            "SELECT SUBSTR(at, 1, 10), outcome, COUNT(*) FROM audit_records "
            "WHERE kind = 'decided' AND at >= ? AND at < ? "
            "GROUP BY SUBSTR(at, 1, 10), outcome ORDER BY 1, 2",
            window.bounds(),
        )
        return [(str(d), str(o), int(n)) for d, o, n in rows]

    def subject_lookups(self, subject_key: str) -> list[AuditRecord]:
        return self._records(
            "SELECT r.body FROM audit_records r JOIN audit_subjects s "
            "ON s.chain = r.chain AND s.seq = r.seq "
            # An opened quarantine copy names the children its content does: a disclosure too.
            "WHERE s.subject_key = ? AND r.kind IN ('console_query', 'quarantine_opened') "
            "ORDER BY r.at, r.chain, r.seq",
            (subject_key,),
        )

    def delivery_counts(self, window: Window) -> list[tuple[str, int, int]]:
        rows = self._q(
            "SELECT d.party, COUNT(*), SUM(CASE WHEN EXISTS (SELECT 1 FROM audit_records o "
            "WHERE o.kind = 'opened' AND o.event_id = d.event_id AND o.party = d.party) "
            "THEN 0 ELSE 1 END) FROM audit_records d WHERE d.kind = 'delivered' "
            "AND d.at >= ? AND d.at < ? GROUP BY d.party ORDER BY d.party",
            window.bounds(),
        )
        return [(str(p), int(n), int(u)) for p, n, u in rows]

    def find_decision(self, event_id: str, party: str) -> AuditRecord | None:
        found = self._records(
            "SELECT body FROM audit_records WHERE kind = 'decided' AND event_id = ? "
            "AND party = ? ORDER BY at DESC",
            (event_id, party),
        )
        return found[0] if found else None

    def withdrawal_notices(self, window: Window) -> list[AuditRecord]:
        return self._records(
            "SELECT body FROM audit_records WHERE kind = 'consent_withdrawn_notice' "
            "AND at >= ? AND at < ? ORDER BY at, chain, seq",
            window.bounds(),
        )

    def policy_impacts(self, window: Window) -> list[AuditRecord]:
        return self._records(
            "SELECT body FROM audit_records WHERE kind = 'policy_impact' "
            "AND at >= ? AND at < ? ORDER BY at DESC, chain, seq",
            window.bounds(),
        )

    def keys_loaded(self, window: Window) -> list[AuditRecord]:
        return self._records(
            "SELECT body FROM audit_records WHERE kind = 'keys_loaded' "
            "AND at >= ? AND at < ? ORDER BY at, chain, seq",
            window.bounds(),
        )

    def encompass_notices(self, window: Window, *, unacknowledged: bool = False) -> list[NoticeRow]:
        # Acknowledged when the broker recorded the school's first opening (its ``opened``
        # record's own time): a school's clock cannot make a late notice look on time.
        acked = (
            "SELECT MIN(o.at) FROM audit_records o WHERE o.kind = 'opened' "
            "AND o.event_id = n.event_id AND o.party = n.party GROUP BY o.event_id, o.party"
        )
        # The GROUP BY changes no answer (one group, or none: NULL, as MIN of nothing) but
        # stops SQLite's MIN optimisation from walking the (kind, at) index through every
        # opening for each notice: 54 s for 3,000 unread notices among 6,000 openings, with
        # the indexer's event loop blocked, against 40 ms by (event_id, party, kind).
        rows = self._q(
            f"SELECT n.event_id, n.party, n.notified_at, ({acked}) AS acked "  # noqa: S608  # constant SQL, values are bound
            "FROM encompass_notices n WHERE n.notified_at >= ? AND n.notified_at < ? "
            + (f"AND ({acked}) IS NULL " if unacknowledged else "")
            + "ORDER BY n.notified_at, n.party, n.event_id",
            window.bounds(),
        )
        return [
            NoticeRow(str(e), str(p), parse_sql_time(str(n)), parse_sql_time(str(a)) if a else None)
            for e, p, n, a in rows
        ]

    def encompass_unsent(self, window: Window) -> list[NoticeRow]:
        rows = self._q(ENCOMPASS_UNSENT, (*window.bounds(), *ENCOMPASS_LIKE))
        return [NoticeRow(str(e), str(p), parse_sql_time(str(a)), None) for e, p, a in rows]

    def review_of(self, event_id: str, party: str) -> OverrideReview | None:
        rows = self._q(
            "SELECT event_id, party, reviewed_by, finding, reference, note, reviewed_at, "
            "chain, seq FROM override_reviews WHERE event_id = ? AND party = ?",
            (event_id, party),
        )
        if not rows:
            return None
        e, p, by, finding, ref, note, at = review_row(rows[0])
        when = datetime.strptime(at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        chain, seq = str(rows[0][7]), int(rows[0][8])
        return OverrideReview(e, p, by, finding, ref, note, when, chain, seq)

    def reviews(self, window: Window) -> list[OverrideReview]:
        rows = self._q(
            "SELECT event_id, party, reviewed_by, finding, reference, note, reviewed_at, "
            "chain, seq FROM override_reviews WHERE reviewed_at >= ? AND reviewed_at < ? "
            "ORDER BY reviewed_at DESC, chain, seq",
            window.bounds(),
        )
        out = []
        for row in rows:
            e, p, by, finding, ref, note, at = review_row(row)
            out.append(
                OverrideReview(e, p, by, finding, ref, note, parse_sql_time(at), str(row[7]),
                               int(row[8]))
            )  # fmt: skip
        return out
