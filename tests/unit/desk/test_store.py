"""The desk's store, on SQLite and on a real PostgreSQL: idempotent by event id and flag id."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from broker.desk import DeskStore, Flag, open_desk_store
from broker.desk._store_schema import CHILD_NHS, KNOWN_MIGRATIONS, PUBLISHED_ONCE, migrate
from broker.errors import AlreadySettled, ConfigError, RecordedAlready, UsageError
from tests.unit.desk.conftest import T0, delivery


@pytest.fixture(params=["sqlite", "postgresql"])
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'desk.db'}"
    else:
        from tests.postgres import fresh_database

        yield from fresh_database(request.getfixturevalue("postgres_server"))


@pytest.fixture
def any_store(any_url: str, tmp_path: Path) -> Iterator[DeskStore]:
    s = open_desk_store(any_url, home=tmp_path, party="p")
    yield s
    s.close()


def flag(flag_id: str = "f1", child: str = "c1") -> Flag:
    return Flag(
        flag_id=flag_id, party="sandwell-coord", rule="multi-agency", title="Two agencies",
        child=child, event_ids=("e1", "e2"), trigger_event_id="e2", raised_at=T0,
        window_seconds=86400,
    )  # fmt: skip


def test_a_record_read_twice_is_stored_once_and_found_by_child(any_store: DeskStore) -> None:
    assert any_store.add_delivery(delivery("e1"), ["c1"], T0) is True
    assert any_store.add_delivery(delivery("e1"), ["c1"], T0 + timedelta(seconds=5)) is False
    assert [r.event_id for r in any_store.records()] == ["e1"]
    [rec] = any_store.records_about("c1")
    assert (rec.event_id, rec.need_level, rec.sender, rec.hidden) == ("e1", 3, "wmp", False)
    assert any_store.records_about("c2") == []


def test_a_second_agencys_record_under_a_taken_event_id_is_not_linked_to_its_children(
    any_store: DeskStore,
) -> None:
    """Agencies choose their own ids and two may choose one: the desk keeps the first, says
    so, and never shows the first record on the second record's child's page."""
    assert any_store.add_delivery(delivery("e1"), ["c1"], T0) is True
    other = delivery("e1", sender="hv-sandwell", type="health.visitor_concern")
    with capture_logs() as logs:
        assert any_store.add_delivery(other, ["c2"], T0) is False
    assert any_store.records_about("c2") == []
    assert [r.sender for r in any_store.records_about("c1")] == ["wmp"]
    assert [(e["event"], e["sender"], e["stored"]) for e in logs] == [
        ("desk_event_id_taken", "hv-sandwell", "wmp")
    ]
    with capture_logs() as logs:  # the same record again is no news
        assert any_store.add_delivery(delivery("e1"), ["c1"], T0) is False
    assert logs == []


def test_a_withdrawal_hides_the_named_records_with_its_reason(any_store: DeskStore) -> None:
    any_store.add_delivery(delivery("e1"), ["c1"], T0)
    any_store.add_delivery(delivery("e2"), ["c1"], T0)
    assert any_store.hide(["e1", "unknown"], "Consent withdrawn", T0) == 1
    assert any_store.hide(["e1"], "again", T0) == 0
    rec = any_store.record("e1")
    assert rec is not None
    assert rec.hidden
    assert rec.hidden_reason == "Consent withdrawn"
    assert any_store.record("e2") is not None
    assert not any_store.record("e2").hidden


def test_a_record_whose_withdrawal_notice_came_first_arrives_hidden(any_store: DeskStore) -> None:
    """A notice and its record travel on different partitions: either may be read first."""
    assert any_store.hide(["e1"], "Consent withdrawn", T0) == 0  # nothing stored yet
    any_store.add_delivery(delivery("e1"), ["c1"], T0)
    any_store.add_delivery(delivery("e2"), ["c1"], T0)
    rec = any_store.record("e1")
    assert rec is not None
    assert rec.hidden
    assert rec.hidden_reason == "Consent withdrawn"
    [shown] = [r for r in any_store.records_about("c1") if not r.hidden]
    assert shown.event_id == "e2"


def test_a_withdrawal_naming_an_id_two_agencies_used_leaves_neither_record_shown(
    any_store: DeskStore,
) -> None:
    """A notice names records by event id alone (docs/sdk.md): it cannot say whose, so the
    desk fails safe, hiding the record it holds under the id and any arriving after."""
    any_store.add_delivery(delivery("e1", sender="hv-sandwell"), ["c2"], T0)
    assert any_store.hide(["e1"], "Consent withdrawn", T0) == 1  # whichever agency's it holds
    any_store.add_delivery(delivery("e1"), ["c1"], T0)  # the other agency's, after the notice
    assert [r for r in any_store.records_about("c1") + any_store.records_about("c2")
            if not r.hidden] == []  # fmt: skip
    any_store.hide(["e3"], "Consent withdrawn", T0)  # the notice first, then two records
    any_store.add_delivery(delivery("e3"), ["c3"], T0)
    any_store.add_delivery(delivery("e3", sender="hv-sandwell"), ["c4"], T0)
    assert [r for c in ("c3", "c4") for r in any_store.records_about(c) if not r.hidden] == []


def test_a_flag_read_twice_is_stored_once_and_leaves_the_open_list_when_decided(
    any_store: DeskStore,
) -> None:
    assert any_store.add_flag(flag(), T0) is True
    assert any_store.add_flag(flag(), T0) is False
    assert [f.flag_id for f in any_store.flags(open_only=True)] == ["f1"]
    any_store.decide(action="signpost", reason="universal services", by="kim", at=T0,
                     flag_ids=["f1"], child="c1")  # fmt: skip
    assert any_store.flags(open_only=True) == []
    [d] = any_store.decisions(child="c1")
    assert (d.action, d.decided_by, d.reason) == ("signpost", "kim", "universal services")


def test_outcomes_are_found_by_the_referral_they_answer(any_store: DeskStore) -> None:
    any_store.add_delivery(delivery("o1", type="coordination.referral_outcome",
                                    reference="ref-1", outcome="closed"), ["c1"], T0)  # fmt: skip
    assert [r.event_id for r in any_store.replies_to("ref-1")] == ["o1"]
    assert any_store.replies_to("ref-2") == []


def test_an_encompass_acknowledgement_is_kept_once(any_store: DeskStore) -> None:
    assert any_store.acknowledge_encompass("e1", "kim", T0) is True
    assert any_store.acknowledge_encompass("e1", "sam", T0 + timedelta(hours=1)) is False
    assert any_store.encompass_ack("e1") == ("kim", T0)


def test_an_unknown_decision_or_database_is_refused(any_store: DeskStore, tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        any_store.decide(action="delete", reason="x", by="kim", at=T0)
    with pytest.raises(UsageError, match="unsupported database"):
        open_desk_store("mysql://x", home=tmp_path, party="p")


def test_a_store_a_newer_desk_migrated_is_refused_in_one_line_and_left_unchanged(
    any_store: DeskStore, any_url: str, tmp_path: Path
) -> None:
    """A restored older image (or a rollback) must not read or write what it does not know."""
    any_store._q(
        "INSERT INTO desk_migrations (name, done_at) VALUES (?, ?)",
        ("from-the-future-2027-01-01", "2027-01-01T00:00:00+00:00"),
    )
    with pytest.raises(ConfigError) as err:
        open_desk_store(any_url, home=tmp_path, party="p")
    message = str(err.value)
    assert "holds migrations this Accord does not know (from-the-future-2027-01-01)" in message
    assert "upgrade Accord" in message
    assert "\n" not in message
    assert "password" not in message  # the PostgreSQL URL is not repeated
    assert any_store.records() == []  # the open store still works: nothing was changed


def test_a_desk_database_is_one_partys_and_another_desk_cannot_open_it(tmp_path: Path) -> None:
    """Records carry no party: a second desk on the same database would show the first's."""
    url = f"sqlite:///{tmp_path / 'desks.db'}"
    open_desk_store(url, home=tmp_path, party="cog-tipton").close()
    with pytest.raises(ConfigError, match="cog-tipton's desk's, not cog-west-bromwich's"):
        open_desk_store(url, home=tmp_path, party="cog-west-bromwich")
    open_desk_store(url, home=tmp_path, party="cog-tipton").close()  # its own, again


def test_a_flag_keeps_its_trigger_its_window_and_its_household(any_store: DeskStore) -> None:
    any_store.add_flag(flag().model_copy(update={"household": "h1"}), T0)
    [kept] = any_store.flags()
    assert (kept.trigger_event_id, kept.window_seconds, kept.household) == ("e2", 86400, "h1")


def test_a_decision_settles_every_flag_it_names_and_no_other(any_store: DeskStore) -> None:
    for f in ("f1", "f2", "f3"):
        any_store.add_flag(flag(f), T0)
    any_store.decide(action="escalate", reason="r", by="kim", at=T0, flag_ids=["f1", "f3"],
                     child="c1")  # fmt: skip
    assert [f.flag_id for f in any_store.flags(open_only=True)] == ["f2"]
    [d] = any_store.decisions(child="c1")
    assert d.flag_ids == ("f1", "f3")


def test_a_decision_on_a_flag_another_settled_first_stores_nothing_and_says_which(
    any_store: DeskStore, any_url: str, tmp_path: Path
) -> None:
    """Another desk process on the same database (whose page's check was stale): none of
    the decision is recorded, not even for its flags still open."""
    for f in ("f1", "f2"):
        any_store.add_flag(flag(f), T0)
    other = open_desk_store(any_url, home=tmp_path, party="p")
    other.decide(action="signpost", reason="r", by="sam", at=T0, flag_ids=["f1"], child="c1")
    with pytest.raises(AlreadySettled) as refused:
        any_store.decide(action="refer", reason="r", by="kim", at=T0, flag_ids=["f2", "f1"],
                         child="c1", published_event="ev1")  # fmt: skip
    other.close()
    assert refused.value.flag_ids == ("f1",)
    assert [d.decided_by for d in any_store.decisions(child="c1")] == ["sam"]
    assert [f.flag_id for f in any_store.flags(open_only=True)] == ["f2"]


@pytest.fixture(
    params=["sqlite", "postgresql", "postgresql repeatable read", "postgresql serializable"]
)
def race_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """As ``any_url``, and PostgreSQL databases whose default isolation level is stricter
    (a server's setting, which the desk must not depend on)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'desk.db'}"
        return
    import psycopg

    from tests.postgres import fresh_database

    for url in fresh_database(request.getfixturevalue("postgres_server")):
        level = request.param.partition(" ")[2]
        if level:
            with psycopg.connect(url, autocommit=True) as conn:
                name = url.rsplit("/", 1)[1]
                setting = f"default_transaction_isolation = '{level}'"
                conn.execute(f"ALTER DATABASE {name} SET {setting}")
        yield url


def test_two_decisions_on_one_flag_at_once_from_two_desk_processes_record_one(
    race_url: str, tmp_path: Path
) -> None:
    """The second, begun while the first is between its check and its commit, waits for it
    and is refused: the check and the writes are one transaction, read committed whatever
    the server's default (repeatable read would record both; serializable would fail)."""
    any_url = race_url
    any_store = open_desk_store(any_url, home=tmp_path, party="p")
    import threading

    any_store.add_flag(flag(), T0)
    other = open_desk_store(any_url, home=tmp_path, party="p")
    written, go_on = threading.Event(), threading.Event()
    q = any_store._q

    def pausing(sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        rows = q(sql, params)
        if sql.startswith("INSERT INTO desk_decisions "):  # checked, its flags not yet written
            written.set()
            go_on.wait(10)
        return rows

    any_store._q = pausing  # type: ignore[method-assign]
    outcomes: dict[str, BaseException | None] = {}

    def decide(name: str, store: DeskStore) -> None:
        try:
            store.decide(action="signpost", reason="r", by=name, at=T0, flag_ids=["f1"],
                         child="c1")  # fmt: skip
            outcomes[name] = None
        except Exception as exc:  # noqa: BLE001  # whatever it is, the test says it
            outcomes[name] = exc

    first = threading.Thread(target=decide, args=("kim", any_store))
    first.start()
    assert written.wait(10)
    second = threading.Thread(target=decide, args=("sam", other))
    second.start()
    second.join(0.5)  # long enough to record, were nothing to stop it
    go_on.set()
    first.join(10)
    second.join(10)
    other.close()
    any_store._q = q  # type: ignore[method-assign]
    decided = [d.decided_by for d in any_store.decisions(child="c1")]
    any_store.close()
    assert outcomes["kim"] is None
    assert isinstance(outcomes["sam"], AlreadySettled), outcomes["sam"]
    assert decided == ["kim"]


def test_a_store_made_before_flags_kept_their_window_is_given_the_columns(
    tmp_path: Path,
) -> None:
    """Its flags and decisions stay as they were: the old ones without a window or trigger,
    a decision's one flag (the column it was kept in then) still settled."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        """CREATE TABLE desk_flags (
            flag_id TEXT PRIMARY KEY, rule TEXT NOT NULL, title TEXT NOT NULL,
            child TEXT NOT NULL, event_ids TEXT NOT NULL, raised_at TEXT NOT NULL,
            received_at TEXT NOT NULL);
        CREATE TABLE desk_decisions (
            decision_id TEXT PRIMARY KEY, flag_id TEXT, child TEXT, subject_event TEXT,
            action TEXT NOT NULL, reason TEXT NOT NULL, decided_by TEXT NOT NULL,
            decided_at TEXT NOT NULL, published_event TEXT);
        INSERT INTO desk_flags VALUES ('old', 'multi-agency', 'Two agencies', 'c1',
            '["e1", "e2"]', '2026-11-23T09:00:00+00:00', '2026-11-23T09:00:00+00:00');
        INSERT INTO desk_flags VALUES ('old2', 'multi-agency', 'Two agencies', 'c1',
            '["e1", "e2"]', '2026-11-24T09:00:00+00:00', '2026-11-24T09:00:00+00:00');
        INSERT INTO desk_decisions VALUES ('d1', 'old', 'c1', NULL, 'signpost', 'r', 'kim',
            '2026-11-23T10:00:00+00:00', NULL);"""
    )
    conn.close()
    for _ in range(2):  # and again at the next start: nothing to add twice
        store = open_desk_store(f"sqlite:///{path}", home=tmp_path, party="p")
        flags = {f.flag_id: f for f in store.flags()}
        old, old2 = flags["old"], flags["old2"]
        assert (old.decided, old.trigger_event_id, old.window_seconds) == (True, None, None)
        assert old2.decided is False
        [d] = store.decisions(child="c1")
        assert d.flag_ids == ("old",)
        assert old.withdrawable is False  # raised by a service that did not say it
        store.add_flag(flag("new"), T0)
        assert store.flag("new").window_seconds == 86400  # type: ignore[union-attr]
        store.close()


def test_whether_the_service_takes_a_flag_back_is_kept_as_it_said(any_store: DeskStore) -> None:
    any_store.add_flag(flag("said").model_copy(update={"withdrawable": True}), T0)
    any_store.add_flag(flag("silent"), T0)
    flags = {f.flag_id: f.withdrawable for f in any_store.flags()}
    assert flags == {"said": True, "silent": False}


def test_a_column_another_desk_process_added_since_the_look_is_not_added_twice(
    any_store: DeskStore,
) -> None:
    """Two processes of one party's desk starting together both find the columns missing:
    the second's ALTER must not stop it starting (DuplicateColumn, "duplicate column")."""
    postgresql = any_store._placeholder != "?"
    stale = ["flag_id", "rule", "title", "child", "event_ids", "raised_at", "received_at"]
    looked: list[str] = []

    def columns(table: str) -> list[str]:  # what the first look saw; the truth after it
        looked.append(table)
        return stale if len(looked) == 1 else any_store._columns(table)

    for _ in range(2):
        looked.clear()
        migrate(any_store._q, columns, postgresql=postgresql)
    any_store.add_flag(flag(), T0)
    assert any_store.flag("f1").window_seconds == 86400  # type: ignore[union-attr]


def test_a_migration_error_other_than_a_duplicate_column_is_not_swallowed(
    tmp_path: Path,
) -> None:
    def query(sql: str) -> list[tuple[object, ...]]:
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(sqlite3.OperationalError, match="locked"):
        migrate(query, lambda _table: [], postgresql=False)


def test_a_search_by_reference_gives_one_more_than_asked_and_no_withdrawn_record(
    any_store: DeskStore,
) -> None:
    for n in range(4):
        any_store.add_delivery(delivery(f"e{n}", decided_at=T0 + timedelta(minutes=n)), [], T0)
    any_store.hide(["e3"], "Consent withdrawn", T0)
    found = any_store.records_with_reference(" wmp/26/1 ", limit=1)
    assert [r.event_id for r in found] == ["e2", "e1"]  # the one asked for and one more


def test_a_search_by_reference_uses_an_index(tmp_path: Path) -> None:
    store = open_desk_store(f"sqlite:///{tmp_path / 'desk.db'}", home=tmp_path, party="p")
    plan = store._q(
        "EXPLAIN QUERY PLAN SELECT event_id FROM desk_records WHERE UPPER(reference) = ?",
        ("WMP/26/1",),
    )
    store.close()
    assert "desk_records_by_upper_reference" in str(plan)


def test_records_no_search_can_find_are_counted_without_reading_a_view_out(
    any_store: DeskStore,
) -> None:
    """By reference: none shared (or blank). By NHS number: no child subject keyed by NHS
    number, as the search finds records by a child's key (an adult's number, or one in the
    summary, finds nothing); withdrawn records aside."""
    no_nhs = [{"role": "child", "given_name": "Ruby", "family_name": "Hart"}]
    sibling = {"role": "child", "nhs_number": "9993080233", "given_name": "Amy"}
    mother = {"role": "adult", "nhs_number": "9990025312"}
    for event_id, view in (
        ("e1", {}),
        ("e2", {"reference": None, "subjects": no_nhs}),
        ("e3", {"reference": "  ", "subjects": no_nhs, "summary": '"nhs_number": "9993080233"'}),
        ("e4", {"subjects": [mother, *no_nhs]}),
        ("e5", {"reference": None, "subjects": no_nhs}),
        ("e6", {"subjects": [*no_nhs, sibling]}),  # found by the sibling's number
        ("e7", {"subjects": [mother, *no_nhs, {**no_nhs[0], "given_name": "Amy"}]}),
        ("e8", {"subjects": [{"nhs_number": "9990025312"}]}),  # no roles: every subject's
    ):
        any_store.add_delivery(delivery(event_id, **view), [], T0)
    any_store.hide(["e5"], "Consent withdrawn", T0)
    assert any_store.count_unsearchable("reference") == 2  # e2, e3
    assert any_store.count_unsearchable("nhs_number") == 4  # e2, e3, e4, e7
    with pytest.raises(UsageError):
        any_store.count_unsearchable("name")


def test_the_counts_of_records_no_search_can_find_read_no_table_through(tmp_path: Path) -> None:
    """Each search counts them: a scan of every view (0.4 s at 300,000 records) would hold
    up every other page of the desk meanwhile."""
    store = open_desk_store(f"sqlite:///{tmp_path / 'desk.db'}", home=tmp_path, party="p")
    asked: list[tuple[str, Sequence[Any]]] = []
    ask = store._q

    def remembered(sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        asked.append((sql, params))
        return ask(sql, params)

    store._q = remembered  # type: ignore[method-assign]
    for by in ("reference", "nhs_number"):  # the count, and for NHS numbers the marking probe
        asked.clear()
        store.count_unsearchable(by)
        assert asked, by
        for sql, params in asked:
            plan = " ".join(str(row) for row in ask(f"EXPLAIN QUERY PLAN {sql}", params))
            assert "SEARCH desk_records USING" in plan, (by, plan)
            assert "SCAN" not in plan, (by, plan)
    store.close()


def test_records_stored_before_the_nhs_mark_are_marked_at_start_and_counted_until_then(
    any_store: DeskStore, any_url: str, tmp_path: Path
) -> None:
    """A store made before records were marked with whether a child is keyed by NHS number:
    its first start marks them from the views stored, and says so in desk_migrations (so a
    desk from 2026-12-07 on refuses the store if it is older); a record an older process
    stores later, unmarked, is marked when the search counts."""
    adult_only = [{"role": "adult", "nhs_number": "9990025312"}, {"role": "child", "dob": "x"}]
    any_store.add_delivery(delivery("e1"), [], T0)
    any_store.add_delivery(delivery("e2", subjects=adult_only), [], T0)
    # As the desk before it left a store.
    any_store._q("DROP INDEX desk_records_by_child_nhs")
    any_store._q("ALTER TABLE desk_records DROP COLUMN child_nhs")
    any_store._q("DELETE FROM desk_migrations WHERE name = ?", (CHILD_NHS,))
    any_store.close()

    store = open_desk_store(any_url, home=tmp_path, party="p")
    assert store.count_unsearchable("nhs_number") == 1  # e2
    assert (CHILD_NHS,) in store._q("SELECT name FROM desk_migrations")
    store._q(  # an older desk process, still running, stores a record: unmarked
        "INSERT INTO desk_records (event_id, event_type, sender, decided_at, received_at, "
        "purpose, outcome, decision, view) SELECT 'e3', event_type, sender, decided_at, "
        "received_at, purpose, outcome, decision, view FROM desk_records WHERE event_id = 'e1'"
    )
    # Marked when counted, not taken for a record that names no child by NHS number (an
    # older desk's records were said to be missed by the search until the next start).
    assert store.count_unsearchable("nhs_number") == 1  # e2 alone: e3 names its child
    assert store._q("SELECT child_nhs FROM desk_records WHERE event_id = 'e3'") == [(1,)]
    store.close()
    assert CHILD_NHS in KNOWN_MIGRATIONS


@pytest.mark.parametrize("view", ["not json", "[1]", "null"])
def test_an_unreadable_stored_view_is_marked_unsearchable_and_the_desk_still_starts(
    any_store: DeskStore, any_url: str, tmp_path: Path, view: str
) -> None:
    """The mark is filled at every start: one view that cannot be read must not stop the desk
    from starting. It is logged by event id alone, never the view."""
    any_store.add_delivery(delivery("e1"), [], T0)
    any_store._q(
        "UPDATE desk_records SET view = ?, child_nhs = NULL WHERE event_id = 'e1'", (view,)
    )
    any_store.close()
    with capture_logs() as logs:
        store = open_desk_store(any_url, home=tmp_path, party="p")
    assert store.count_unsearchable("nhs_number") == 1
    store.close()
    assert [(e["event"], e["event_id"]) for e in logs if e["event"] == "desk_view_unreadable"] == [
        ("desk_view_unreadable", "e1")
    ]


def test_two_desks_starting_together_on_postgresql_make_the_schema_one_after_the_other(
    postgres_server: Any, tmp_path: Path
) -> None:
    """CREATE ... IF NOT EXISTS is not safe against the same statement at once on PostgreSQL
    (one start failed): a desk waits for the one making or migrating the schema."""
    import threading

    import psycopg

    from broker.desk._store_locks import _SCHEMA_LOCK
    from tests.postgres import fresh_database

    database = fresh_database(postgres_server)
    url = next(database)
    holder = psycopg.connect(url, autocommit=True)
    holder.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK,))
    opened: list[DeskStore] = []
    starting = threading.Thread(
        target=lambda: opened.append(open_desk_store(url, home=tmp_path, party="p"))
    )
    starting.start()
    starting.join(timeout=1.0)
    assert starting.is_alive()  # waiting for the other start's schema
    holder.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))
    starting.join(timeout=30)
    holder.close()
    assert not starting.is_alive()
    [store] = opened
    assert store.count_unsearchable("nhs_number") == 0
    store.close()
    database.close()  # drops it


def test_a_store_holding_an_event_recorded_twice_keeps_the_earliest_row_and_its_flags(
    any_store: DeskStore, any_url: str, tmp_path: Path
) -> None:
    """Before desk_decisions_published_once, two desk processes could record one referral
    twice: the next start keeps the earliest row, which takes over the later rows' flags,
    says how many it removed (counts only), and the index then refuses a copy."""
    any_store.add_flag(flag("f1"), T0)
    any_store.add_flag(flag("f2"), T0)
    any_store._q("DROP INDEX desk_decisions_published_once")
    any_store._q("DELETE FROM desk_migrations WHERE name = ?", (PUBLISHED_ONCE,))
    first = any_store.decide(
        action="refer", reason="r", by="u", at=T0, child="c1", flag_ids=["f1"],
        published_event="p1",
    )  # fmt: skip
    # As a desk before the index wrote the copy (its check had passed).
    any_store._q(
        "INSERT INTO desk_decisions (decision_id, child, action, reason, decided_by, "
        "decided_at, published_event) VALUES ('d2', 'c1', 'refer', 'r', 'u', ?, 'p1')",
        ((T0 + timedelta(minutes=1)).isoformat(),),
    )
    any_store._q("INSERT INTO desk_decision_flags (decision_id, flag_id) VALUES ('d2', 'f2')")
    any_store.decide(action="signpost", reason="r", by="u", at=T0, child="c2")
    any_store.close()
    with capture_logs() as logs:
        store = open_desk_store(any_url, home=tmp_path, party="p")
    [kept] = [d for d in store.decisions() if d.published_event == "p1"]
    assert kept.decision_id == first.decision_id
    assert sorted(kept.flag_ids) == ["f1", "f2"]
    assert len(store.decisions()) == 2
    assert [e for e in logs if e["event"] == "desk_duplicate_decisions_removed"] == [
        {"event": "desk_duplicate_decisions_removed", "events": 1, "rows": 1,
         "log_level": "warning"}
    ]  # fmt: skip
    assert (PUBLISHED_ONCE,) in store._q("SELECT name FROM desk_migrations")
    with pytest.raises(RecordedAlready):
        store.decide(action="refer", reason="r", by="u", at=T0, child="c1", published_event="p1")
    store.close()


def test_a_unique_clash_other_than_the_published_event_is_not_taken_for_recorded_already(
    any_store: DeskStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decision id used twice is a fault to raise, not "recorded already" (which the
    caller would show as its own event recorded, nothing recorded for it)."""
    import uuid

    same = uuid.UUID(int=7)
    monkeypatch.setattr("broker.desk._store.uuid.uuid4", lambda: same)
    kw: dict[str, Any] = {"action": "declined", "reason": "r", "by": "u", "at": T0}
    any_store.decide(**kw, subject_event="r1", published_event="p1")
    with pytest.raises(Exception) as raised:  # noqa: PT011  # the driver's own, either dialect
        any_store.decide(**kw, subject_event="r2", published_event="p2")
    assert not isinstance(raised.value, RecordedAlready)
    assert "decision_id" in str(raised.value) or "pkey" in str(raised.value)
    monkeypatch.undo()
    monkeypatch.setattr("broker.desk._store_locks.recorded_already", lambda *_: None)
    with pytest.raises(RecordedAlready):  # the index itself still says so
        any_store.decide(**kw, subject_event="r1", published_event="p1")


def test_a_copy_an_older_desk_records_while_copies_are_removed_does_not_stop_the_start(
    any_store: DeskStore, any_url: str, tmp_path: Path
) -> None:
    """Between the removal of copies and the unique index, an older desk process on the
    store records a copy of an event: kept out until the index is made (then refused by
    it), not let in to make the index fail and the desk not start."""
    postgresql = any_store._placeholder != "?"
    any_store._q("DROP INDEX desk_decisions_published_once")
    any_store._q("DELETE FROM desk_migrations WHERE name = ?", (PUBLISHED_ONCE,))
    any_store.decide(action="declined", reason="r", by="u", at=T0, published_event="p1")
    copy = (
        "INSERT INTO desk_decisions (decision_id, action, reason, decided_by, decided_at, "
        "published_event) VALUES ('older', 'declined', 'r', 'u', '2026-12-07', 'p1')"
    )
    if postgresql:
        import psycopg

        older: Any = psycopg.connect(any_url, autocommit=True)
        older.execute("SET lock_timeout = '200ms'")  # in the test's one thread: not for ever
        kept_out: Any = psycopg.errors.LockNotAvailable
    else:
        older = sqlite3.connect(tmp_path / "desk.db", isolation_level=None, timeout=0.2)
        kept_out = sqlite3.OperationalError
    refused: list[str] = []

    def query(sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if sql.startswith("CREATE UNIQUE INDEX"):
            try:
                older.execute(copy)
            except kept_out:
                refused.append("kept out")
        return any_store._q(sql, params)

    try:
        migrate(query, any_store._columns, postgresql=postgresql)
    finally:
        older.close()
    assert refused == ["kept out"]
    assert [d.published_event for d in any_store.decisions()] == ["p1"]
    assert (PUBLISHED_ONCE,) in any_store._q("SELECT name FROM desk_migrations")
