"""The desk's own store: what the party received, what its people decided, what they read.

SQLite by default, PostgreSQL like the audit index: both speak the same SQL (``?`` placeholders
become ``%s`` for psycopg); they differ only in how they connect. ``open_desk_store``
(``_store_open``) picks one from a URL (``sqlite:///PATH``, ``postgresql://…``, or None:
``<home>/desk/<party>.db``).

Everything is idempotent by its natural id: a delivery read twice (a redelivery after a crash)
or a flag read twice is stored once, and a withdrawal notice applied twice hides nothing more.
The store is the party's own, inside its own organisation: it holds the views Accord delivered
(personal data, as the agreements allow), so it lives beside the party's keystore.

A child keyed anew when names began to be compared as the broker compares them (2026-12-05)
is re-keyed here once (:meth:`DeskStore.rekey_children`, from the views the store holds): its
records are filed under its new key too, and its old key becomes an alias of the new one, so
flags and decisions filed under the old key, and a flag still arriving with it, are the
child's (docs/desk.md, "Upgrading").
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from broker.desk import _store_locks, _store_notices
from broker.desk._flag import ChildKeys, Flag, view_keys_child_by_nhs_number
from broker.desk._store_locks import one_transaction, settled_among
from broker.desk._store_schema import REKEYED, claim, mark_child_nhs, prepare
from broker.desk._store_since import new_since_in_snapshot
from broker.desk._store_taken import taken_among, taken_by_another
from broker.desk._stored import (
    BY_ID,
    DECISION_COLUMNS,
    R_COLUMNS,
    RECORD_COLUMNS,
    StoredDecision,
    StoredFlag,
    StoredRecord,
    as_text,
    decision_row,
    record_row,
)
from broker.errors import AlreadySettled, ConfigError, RecordedAlready, UsageError
from broker.events import REFERRAL_OUTCOMES, Delivery

__all__ = [
    "ACTIONS",
    "HUB_OUTCOMES",
    "RECORDS_WITHDRAWN",
    "TEAM_ACTIONS",
    "DeskStore",
    "StoredDecision",
    "StoredFlag",
    "StoredRecord",
]

_REKEY_BATCH = 500

_IN_BATCH = 500  # ids per IN (...): within SQLite's bound on parameters

#: What a person may decide: the co-ordinating team about a child (``refer`` publishes a
#: referral), a hub about a referral (each outcome publishes an outcome event).
TEAM_ACTIONS = ("refer", "signpost", "no_further_action", "escalate")
HUB_OUTCOMES = REFERRAL_OUTCOMES  # each publishes an outcome event of that value
#: Not a decision about the child: the team closed a flag whose records were all withdrawn.
RECORDS_WITHDRAWN = "records_withdrawn"
ACTIONS = (*TEAM_ACTIONS, *HUB_OUTCOMES, RECORDS_WITHDRAWN)


class DeskStore:
    """One party's desk store over a DB-API connection (autocommit: one statement, one write;
    a decision, its check that its flags are open and its writes, one transaction)."""

    def __init__(
        self, conn: Any, *, placeholder: str = "?", where: str = "the desk's database"
    ) -> None:
        self._conn = conn
        self._placeholder = placeholder
        self._where = where
        # Legacy keys whose flags and decisions this process has moved (``add_aliases``).
        self._moved: set[str] = set()
        try:
            prepare(self._q, self._columns, postgresql=placeholder != "?", where=where)
        except ConfigError:
            conn.close()
            raise

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self._placeholder != "?":
            sql = sql.replace("?", self._placeholder)
        cur = self._conn.execute(sql, tuple(params))
        if cur.description is None:
            return []
        return list(cur.fetchall())

    def _columns(self, table: str) -> list[str]:
        cur = self._conn.execute(f"SELECT * FROM {table} WHERE 1 = 0")  # noqa: S608  # a constant table name
        cur.fetchall()
        return [str(c[0]) for c in cur.description]

    def close(self) -> None:
        self._conn.close()

    def claim(self, party: str) -> None:
        """Make this ``party``'s store, or refuse one another desk has: two desks on one
        database (one ``ACCORD_DESK__STORE`` for all) would each show the other's records."""
        try:
            owners = claim(self._q, party, self._where, postgresql=self._placeholder != "?")
        except ConfigError:
            self.close()
            raise
        if owners != [party]:
            self.close()
            raise ConfigError(
                f"this desk database is {', '.join(owners)}'s desk's, not {party}'s: give each "
                "desk its own database (ACCORD_DESK__STORE)"
            )

    # -- what arrives ---------------------------------------------------------------------

    def add_delivery(
        self, delivery: Delivery, children: Sequence[str], received_at: datetime
    ) -> bool:
        """Store a delivered view once (False: it was already here)."""
        view = delivery.view
        decision = {
            "clauses": list(delivery.clauses),
            "agreements": list(delivery.agreements),
            "lawful_basis": delivery.lawful_basis,
            "policy_version": delivery.policy_version,
        }
        reference = view.get("reference")
        occurred = view.get("occurred_at")
        rows = self._q(
            "INSERT INTO desk_records (event_id, event_type, sender, reference, occurred_at, "
            "decided_at, received_at, purpose, outcome, decision, view, child_nhs) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING "
            "RETURNING event_id",
            (
                delivery.event_id, str(view.get("type", "")), str(view.get("sender", "")),
                reference if isinstance(reference, str) else None,
                occurred if isinstance(occurred, str) else None,
                as_text(delivery.decided_at), as_text(received_at), delivery.purpose,
                delivery.outcome,
                json.dumps(decision, sort_keys=True), json.dumps(view, sort_keys=True),
                int(view_keys_child_by_nhs_number(view)),
            ),
        )  # fmt: skip
        if not rows and taken_by_another(self._q, delivery.event_id, str(view.get("sender", ""))):
            return False  # never linked to this record's children: they are another's
        for child in dict.fromkeys(children):
            self._q(
                "INSERT INTO desk_record_children (event_id, child) VALUES (?, ?) "
                "ON CONFLICT (event_id, child) DO NOTHING",
                (delivery.event_id, child),
            )
        withdrawn = self._q(
            "SELECT reason, withdrawn_at FROM desk_withdrawn WHERE event_id = ?",
            (delivery.event_id,),
        )
        if withdrawn:  # its notice came first: the record arrives hidden
            self._q(
                "UPDATE desk_records SET hidden = 1, hidden_reason = ?, hidden_at = ? "
                "WHERE event_id = ? AND hidden = 0",
                (withdrawn[0][0], withdrawn[0][1], delivery.event_id),
            )
        return bool(rows)

    def taken_among(self, event_ids: Iterable[str]) -> set[str]:
        return taken_among(self._q, event_ids)

    def hide(self, event_ids: Sequence[str], reason: str, at: datetime) -> int:
        """Hide the named records (a withdrawal notice), and any of them that arrives later;
        how many stored records were newly hidden."""
        hidden = 0
        for event_id in event_ids:
            self._q(
                "INSERT INTO desk_withdrawn (event_id, reason, withdrawn_at) VALUES (?, ?, ?) "
                "ON CONFLICT (event_id) DO NOTHING",
                (event_id, reason, as_text(at)),
            )
            hidden += len(
                self._q(
                    "UPDATE desk_records SET hidden = 1, hidden_reason = ?, hidden_at = ? "
                    "WHERE event_id = ? AND hidden = 0 RETURNING event_id",
                    (reason, as_text(at), event_id),
                )
            )
        return hidden

    def add_flag(self, flag: Flag, received_at: datetime) -> bool:
        # A flag raised before the upgrade (or by a service not yet upgraded) names the
        # child by its old key.
        rows = self._q(
            "INSERT INTO desk_flags (flag_id, rule, title, child, event_ids, raised_at, "
            "received_at, trigger_event_id, window_seconds, household, withdrawable) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (flag_id) DO NOTHING "
            "RETURNING flag_id",
            (
                flag.flag_id, flag.rule, flag.title, self.current_child(flag.child),
                json.dumps(list(flag.event_ids)), as_text(flag.raised_at), as_text(received_at),
                flag.trigger_event_id, flag.window_seconds, flag.household,
                int(flag.withdrawable),
            ),
        )  # fmt: skip
        return bool(rows)

    # -- children keyed anew (2026-12-05) -------------------------------------------------

    def add_aliases(self, aliases: Mapping[str, str]) -> int:
        """Note each legacy key → key now, and make the flags and decisions filed under a
        legacy key the child's. How many aliases were new.

        The moves run once per legacy key in each process, whether or not the alias is new:
        each statement commits alone, and a crash (or a failed statement) after an alias was
        noted would otherwise leave its flags under the legacy key for good, where no page
        shows them and no decision can close them. Moving again is a no-op, and after the
        first move no flag lands under the legacy key (``add_flag`` files it as the child's),
        so ingest, which calls this for every delivery naming such a child, skips the rest."""
        added = 0
        for legacy, child in aliases.items():
            if legacy in self._moved:
                continue
            if self._q(
                "INSERT INTO desk_child_aliases (legacy, child) VALUES (?, ?) "
                "ON CONFLICT (legacy) DO NOTHING RETURNING legacy",
                (legacy, child),
            ):
                added += 1
            self._q("UPDATE desk_flags SET child = ? WHERE child = ?", (child, legacy))
            self._q("UPDATE desk_decisions SET child = ? WHERE child = ?", (child, legacy))
            self._moved.add(legacy)
        return added

    def current_child(self, child: str) -> str:
        """The key a child has now, given any key it had (itself if it was never re-keyed)."""
        rows = self._q("SELECT child FROM desk_child_aliases WHERE legacy = ?", (child,))
        return str(rows[0][0]) if rows else child

    def rekey_children(
        self, keys_of: Callable[[dict[str, Any]], Sequence[ChildKeys]]
    ) -> int | None:
        """Once per store: file every stored record under its children's keys now (``keys_of``
        a view), beside the keys it was filed under, and note the legacy keys as aliases.
        None if done before; else how many children were keyed anew. A crash part way is
        harmless: every step is idempotent, and it runs again at the next start."""
        if self._q("SELECT 1 FROM desk_migrations WHERE name = ?", (REKEYED,)):
            return None
        aliases: dict[str, str] = {}
        after = ""
        while rows := self._q(
            "SELECT event_id, view FROM desk_records WHERE event_id > ? ORDER BY event_id LIMIT ?",
            (after, _REKEY_BATCH),
        ):
            for event_id, view in rows:
                keys = keys_of(json.loads(view))
                for child in dict.fromkeys(k.key for k in keys if k.key is not None):
                    self._q(
                        "INSERT INTO desk_record_children (event_id, child) VALUES (?, ?) "
                        "ON CONFLICT (event_id, child) DO NOTHING",
                        (event_id, child),
                    )
                aliases.update({k.legacy: k.key for k in keys if k.key and k.legacy})
            after = rows[-1][0]
        self.add_aliases(aliases)
        self._q(
            "INSERT INTO desk_migrations (name, done_at) VALUES (?, ?) "
            "ON CONFLICT (name) DO NOTHING",
            (REKEYED, as_text(datetime.now(UTC))),
        )
        return len(set(aliases.values()))

    # -- what people decide ---------------------------------------------------------------

    def decide(
        self,
        *,
        action: str,
        reason: str,
        by: str,
        at: datetime,
        flag_ids: Sequence[str] = (),
        child: str | None = None,
        subject_event: str | None = None,
        published_event: str | None = None,
        wait_seconds: float | None = None,
    ) -> StoredDecision:
        """Record a decision; it settles ``flag_ids`` (the caller checks they are the
        child's). Raises :class:`AlreadySettled`, recording nothing, if another decision
        settled any of them first: no flag has two, perhaps contrary, decisions; and
        :class:`RecordedAlready` if a decision names ``published_event`` already (one event,
        one decision, whichever desk process records it). Another writer is waited for
        ``wait_seconds`` (None: the store's usual wait), then :class:`StoreBusy`."""
        if action not in ACTIONS:
            raise UsageError(f"unknown decision {action!r}")
        decision = StoredDecision(
            str(uuid.uuid4()), tuple(dict.fromkeys(flag_ids)), child, subject_event, action,
            reason, by, at, published_event,
        )  # fmt: skip
        postgresql = self._placeholder != "?"
        # Checked and written in one transaction: a caller's own check, before it published a
        # referral, may be stale (another desk process on this store decided meanwhile).
        try:
            with one_transaction(self._conn, postgresql=postgresql, wait_seconds=wait_seconds):
                _store_locks.recorded_already(self._q, published_event)
                if settled := settled_among(self._q, decision.flag_ids, postgresql=postgresql):
                    raise AlreadySettled(settled)  # noqa: TRY301  # read inside the transaction
                self._q(
                    f"INSERT INTO desk_decisions ({DECISION_COLUMNS}) "  # noqa: S608  # constant columns and clauses; values are bound
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        decision.decision_id, None, child, subject_event, action, reason, by,
                        as_text(at), published_event,
                    ),
                )  # fmt: skip
                for flag_id in decision.flag_ids:
                    self._q(
                        "INSERT INTO desk_decision_flags (decision_id, flag_id) VALUES (?, ?) "
                        "ON CONFLICT (decision_id, flag_id) DO NOTHING",
                        (decision.decision_id, flag_id),
                    )
        except Exception as exc:  # the unique index: another process recorded it first
            if published_event is not None and _store_locks.published_twice(exc):
                raise RecordedAlready(published_event) from None
            raise
        return decision

    def acknowledge_encompass(self, event_id: str, by: str, at: datetime) -> bool:
        return _store_notices.acknowledge(self._q, event_id, by, at)

    def encompass_opened(self, event_ids: Iterable[str], by: str, at: datetime) -> None:
        """Notices opened, their acknowledgements sent: each one's first kept (_store_notices)."""
        _store_notices.note_opened(self._q, event_ids, by, at)

    # -- what the pages read --------------------------------------------------------------

    def record(self, event_id: str) -> StoredRecord | None:
        rows = self._q(BY_ID, (event_id,))
        return record_row(rows[0]) if rows else None

    def records(self, *, event_type: str | None = None) -> list[StoredRecord]:
        where, params = ("WHERE event_type = ?", (event_type,)) if event_type else ("", ())
        rows = self._q(
            f"SELECT {RECORD_COLUMNS} FROM desk_records {where} "  # noqa: S608  # constant columns and clauses; values are bound
            "ORDER BY decided_at DESC, event_id",
            params,
        )
        return [record_row(r) for r in rows]

    def records_page(self, *, limit: int, offset: int) -> tuple[list[StoredRecord], int]:
        """``limit`` stored records from ``offset``, newest first, and how many there are."""
        rows = self._q(
            f"SELECT {RECORD_COLUMNS} FROM desk_records "  # noqa: S608  # constant columns; values are bound
            "ORDER BY decided_at DESC, event_id LIMIT ? OFFSET ?",
            (limit, offset),
        )
        [(total,)] = self._q("SELECT COUNT(*) FROM desk_records")
        return [record_row(r) for r in rows], int(total)

    def records_with_reference(self, reference: str, *, limit: int) -> list[StoredRecord]:
        """Up to ``limit`` + 1 records, withdrawn ones left out, whose shared ``reference`` is
        this one, case and surrounding spaces aside (people type ``wmp/26/1`` for
        ``WMP/26/1``), newest first: one more than ``limit`` says there are more."""
        rows = self._q(
            f"SELECT {RECORD_COLUMNS} FROM desk_records "  # noqa: S608  # as above
            "WHERE UPPER(reference) = ? AND hidden = 0 "
            "ORDER BY decided_at DESC, event_id LIMIT ?",
            (reference.strip().upper(), limit + 1),
        )
        return [record_row(r) for r in rows]

    def count_unsearchable(self, by: str) -> int:
        """How many records (withdrawn ones aside) a search ``by`` ``reference`` or
        ``nhs_number`` cannot find: no reference shared (or an empty one); no child subject
        keyed by NHS number (the search looks records up by the child's key, so an adult's
        NHS number finds nothing), as marked when the record was stored (``child_nhs``; one
        an older desk process stored unmarked is marked first, so it is not miscounted).
        Indexed counts: no record leaves the database, none is opened, and a large store is
        not read through."""
        if by == "reference":  # as desk_records_without_reference is made, to use it
            where = "(reference IS NULL OR TRIM(reference) = '')"
        elif by == "nhs_number":
            mark_child_nhs(self._q)
            where = "child_nhs = 0"
        else:
            raise UsageError(f"no search by {by!r}")
        [(n,)] = self._q(f"SELECT COUNT(*) FROM desk_records WHERE hidden = 0 AND {where}")  # noqa: S608  # constant clauses
        return int(n)

    def records_about(self, child: str) -> list[StoredRecord]:
        """Every record naming the child, oldest first (hidden ones included, marked)."""
        rows = self._q(
            f"SELECT {R_COLUMNS} "  # noqa: S608  # constant columns and clauses; values are bound
            "FROM desk_records r JOIN desk_record_children c ON c.event_id = r.event_id "
            "WHERE c.child = ? ORDER BY r.occurred_at, r.received_at, r.event_id",
            (child,),
        )
        return [record_row(r) for r in rows]

    def children_of(self, event_id: str) -> list[str]:
        rows = self._q("SELECT child FROM desk_record_children WHERE event_id = ?", (event_id,))
        return sorted(r[0] for r in rows)

    def replies_to(self, event_id: str) -> list[StoredRecord]:
        """Records whose ``reference`` is this event id (a referral's outcomes)."""
        rows = self._q(
            f"SELECT {RECORD_COLUMNS} FROM desk_records WHERE reference = ? "  # noqa: S608  # constant columns and clauses; values are bound
            "ORDER BY decided_at, event_id",
            (event_id,),
        )
        return [record_row(r) for r in rows]

    def flags(self, *, open_only: bool = False) -> list[StoredFlag]:
        rows = self._q(
            "SELECT f.flag_id, f.rule, f.title, f.child, f.event_ids, f.raised_at, "
            "EXISTS (SELECT 1 FROM desk_decisions d WHERE d.flag_id = f.flag_id) "
            "OR EXISTS (SELECT 1 FROM desk_decision_flags s WHERE s.flag_id = f.flag_id), "
            "f.trigger_event_id, f.window_seconds, f.household, f.withdrawable "
            "FROM desk_flags f ORDER BY f.raised_at, f.flag_id"
        )
        ids = [tuple(json.loads(r[4])) for r in rows]
        gone = self._withdrawn_among({i for event_ids in ids for i in event_ids})
        out = [
            StoredFlag(r[0], r[1], r[2], r[3], event_ids,
                       datetime.fromisoformat(r[5]), bool(r[6]), r[7],
                       None if r[8] is None else int(r[8]), r[9],
                       withdrawn=bool(event_ids) and gone.issuperset(event_ids),
                       withdrawable=bool(r[10]))
            for r, event_ids in zip(rows, ids, strict=True)
        ]  # fmt: skip
        return [f for f in out if not (open_only and f.decided)]

    def _withdrawn_among(self, event_ids: set[str]) -> set[str]:
        """Which of ``event_ids`` a withdrawal notice named (kept whether or not the record
        arrived: ``hide``)."""
        found: set[str] = set()
        ordered = sorted(event_ids)
        for i in range(0, len(ordered), _IN_BATCH):
            chunk = ordered[i : i + _IN_BATCH]
            marks = ", ".join("?" * len(chunk))
            found.update(
                r[0]
                for r in self._q(
                    f"SELECT event_id FROM desk_withdrawn WHERE event_id IN ({marks})",  # noqa: S608  # placeholders only; values are bound
                    chunk,
                )
            )
        return found

    def new_since_decision(self) -> list[tuple[str, int, datetime]]:
        """Children with records received since their latest decision about them, which
        ones count: ``_store_since``. (child, how many, when that decision was recorded),
        newest arrivals first. A flag fires once per window, so these would otherwise wait
        unseen."""
        return new_since_in_snapshot(
            self._q, RECORDS_WITHDRAWN, postgresql=self._placeholder != "?"
        )

    def flag(self, flag_id: str) -> StoredFlag | None:
        return next((f for f in self.flags() if f.flag_id == flag_id), None)

    def decisions(
        self, *, child: str | None = None, subject_event: str | None = None
    ) -> list[StoredDecision]:
        params: tuple[str, ...] = ()
        if child is not None:
            where, params = "WHERE child = ?", (child,)
        elif subject_event is not None:
            where, params = "WHERE subject_event = ?", (subject_event,)
        else:
            where, params = "", ()
        rows = self._q(
            f"SELECT {DECISION_COLUMNS} FROM desk_decisions {where} "  # noqa: S608  # constant columns and clauses; values are bound
            "ORDER BY decided_at, decision_id",
            params,
        )
        settled: dict[str, list[str]] = {}
        for decision_id, flag_id in self._q(
            "SELECT s.decision_id, s.flag_id FROM desk_decision_flags s "  # noqa: S608  # as above
            f"JOIN desk_decisions d ON d.decision_id = s.decision_id {where} "
            "ORDER BY s.flag_id",
            params,
        ):
            settled.setdefault(decision_id, []).append(flag_id)
        return [decision_row(r, settled.get(r[0], ())) for r in rows]

    def encompass_ack(self, event_id: str) -> tuple[str, datetime] | None:
        return _store_notices.acknowledged(self._q, event_id)

    def encompass_first_opened(self, event_id: str) -> tuple[str, datetime] | None:
        return _store_notices.first_opened(self._q, event_id)
