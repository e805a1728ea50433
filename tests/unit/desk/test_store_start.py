"""A desk's start beside another desk process on the store that holds a decision open (paused
or cut off mid-way): once the store is up to date the start takes no table lock and goes
ahead; a start that must still bring the store up to date waits a bounded time, then fails in
one line, never hanging (with every live desk's decisions queued behind it)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from broker.desk import DeskStore, _store_locks, _store_schema, open_desk_store
from broker.desk._store_open import _sqlite
from broker.desk._store_schema import PUBLISHED_ONCE, migrate
from broker.errors import ConfigError
from tests.unit.desk.conftest import T0

_MID_DECISION = (
    "INSERT INTO desk_decisions (decision_id, action, reason, decided_by, decided_at) "
    "VALUES ('paused', 'signpost', 'r', 'u', '2026-12-07')",
    "INSERT INTO desk_decision_flags (decision_id, flag_id) VALUES ('paused', 'f1')",
)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'desk.db'}"
    else:
        from tests.postgres import fresh_database

        yield from fresh_database(request.getfixturevalue("postgres_server"))


@pytest.fixture
def pg_url(postgres_server: str) -> Iterator[str]:
    from tests.postgres import fresh_database

    yield from fresh_database(postgres_server)


def _paused(url: str, tmp_path: Path) -> Any:
    """Another desk process mid-decision: its transaction open, its writes not committed."""
    if url.startswith("sqlite"):
        conn: Any = sqlite3.connect(tmp_path / "desk.db", isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
    else:
        import psycopg

        conn = psycopg.connect(url)
    for statement in _MID_DECISION:
        conn.execute(statement)
    return conn


def _start(url: str, tmp_path: Path) -> tuple[list[object], threading.Thread]:
    """A desk starting in a thread: what it ended with (its store, or the error raised)."""
    ended: list[object] = []

    def start() -> None:
        try:
            ended.append(open_desk_store(url, home=tmp_path, party="p"))
        except Exception as exc:  # noqa: BLE001  # whatever it is, the test says it
            ended.append(exc)

    thread = threading.Thread(target=start, daemon=True)
    thread.start()
    return ended, thread


def test_a_start_on_a_store_already_up_to_date_takes_no_lock_on_the_decisions(
    any_url: str, tmp_path: Path
) -> None:
    """The unique index, once made, refuses every copy: nothing to remove, nothing to keep
    out, so no LOCK TABLE (or BEGIN IMMEDIATE) at every start waiting for any decision."""
    store = open_desk_store(any_url, home=tmp_path, party="p")
    said: list[str] = []

    def query(sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        said.append(sql)
        return store._q(sql, params)

    migrate(query, store._columns, postgresql=store._placeholder != "?")
    store.close()
    assert not [sql for sql in said if sql.startswith(("BEGIN", "LOCK", "CREATE UNIQUE"))]


def test_a_postgresql_desk_starts_while_another_desk_process_holds_a_decision_open(
    pg_url: str, tmp_path: Path
) -> None:
    """Its decision's table locks (desk_decisions, desk_decision_flags) held: the start
    neither locks the table nor makes an index that is there (CREATE INDEX IF NOT EXISTS
    takes its table's lock even then), so it does not wait for the paused transaction."""
    open_desk_store(pg_url, home=tmp_path, party="p").close()
    paused = _paused(pg_url, tmp_path)
    try:
        began = time.monotonic()
        ended, thread = _start(pg_url, tmp_path)
        thread.join(10)
        assert len(ended) == 1, "the start hung behind the paused transaction"
        assert isinstance(ended[0], DeskStore), ended
        assert time.monotonic() - began < 5
        ended[0].decide(action="signpost", reason="r", by="u", at=T0, published_event="p1")
        ended[0].close()
    finally:
        paused.rollback()
        paused.close()
        thread.join(10)


def test_a_sqlite_desk_on_an_up_to_date_store_starts_while_another_process_holds_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its write lock held (a desk process paused mid-decision): the start only reads (an
    insert that adds nothing, a migration or the owner already recorded, takes the write
    lock on SQLite and stopped every start behind the paused one), and reads the store."""
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    open_desk_store(url, home=tmp_path, party="p").close()
    monkeypatch.setattr(_store_locks, "WAIT_SECONDS", 1)
    paused = _paused(url, tmp_path)
    try:
        store = open_desk_store(url, home=tmp_path, party="p")
        assert store.decisions(child="c") == []
        store.close()
    finally:
        paused.rollback()
        paused.close()


def test_a_claim_held_up_by_another_process_fails_the_start_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store nobody has claimed yet must be written to: a hold outlasting the wait is the
    start's one line (it was a traceback: 'database is locked'), the connection closed."""
    monkeypatch.setattr(_store_locks, "WAIT_SECONDS", 1)
    store = _sqlite(tmp_path / "desk.db")  # made, not yet claimed
    paused = _paused(f"sqlite:///{tmp_path / 'desk.db'}", tmp_path)
    try:
        with pytest.raises(ConfigError) as caught:
            store.claim("p")
    finally:
        paused.rollback()
        paused.close()
    assert "\n" not in str(caught.value)
    assert "held by another session" in str(caught.value)
    with pytest.raises(sqlite3.ProgrammingError):  # closed
        store._q("SELECT 1")


def test_an_upgrade_start_held_up_by_another_desk_process_fails_in_one_line_then_starts(
    any_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first start after the upgrade must keep other writers out while it removes copies
    and makes the index: it waits the store's wait for a decision under way, no longer (the
    start hung for as long as the paused one held on, and a live desk's decisions queued
    behind it), says so in one line, and the next start, the hold let go, does it."""
    store = open_desk_store(any_url, home=tmp_path, party="p")
    store._q("DROP INDEX desk_decisions_published_once")
    store._q("DELETE FROM desk_migrations WHERE name = ?", (PUBLISHED_ONCE,))
    store.close()
    monkeypatch.setattr(_store_locks, "WAIT_SECONDS", 1)
    kept_out: list[bool] = []
    guard = _store_schema.others_kept_out

    def guarded(query: Any, *, postgresql: bool) -> Any:
        kept_out.append(True)
        return guard(query, postgresql=postgresql)

    monkeypatch.setattr(_store_schema, "others_kept_out", guarded)
    paused = _paused(any_url, tmp_path)
    try:
        began = time.monotonic()
        ended, thread = _start(any_url, tmp_path)
        thread.join(10)
        waited = time.monotonic() - began
        assert len(ended) == 1, "the start hung behind the paused transaction"
        [error] = ended
        assert isinstance(error, ConfigError), error
        assert 0.9 <= waited < 5
        message = str(error)
        assert "\n" not in message
        assert "held by another session (a desk process mid-decision, a backup" in message
        assert "start this desk again once that session ends" in message
        assert "pg_stat_activity" in message
        assert kept_out, "it stopped before the guarded removal, not at it"
    finally:
        paused.rollback()
        paused.close()
        thread.join(10)
    store = open_desk_store(any_url, home=tmp_path, party="p")
    assert (PUBLISHED_ONCE,) in store._q("SELECT name FROM desk_migrations")
    assert not store._q("SELECT 1 FROM desk_decisions WHERE decision_id = 'paused'")
    store.close()


def _writing(path: Path) -> sqlite3.Connection:
    """Another desk process started on the same fresh file, making the tables: its write
    lock held on a file not yet in WAL (SQLite then refuses a change to WAL at once)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def test_a_sqlite_start_on_a_fresh_file_another_process_is_writing_waits_and_starts(
    tmp_path: Path,
) -> None:
    """Its change to WAL refused at once while the other writes: asked again until the
    other's write ends, the start goes ahead (it was a 'database is locked' traceback)."""
    path = tmp_path / "desk.db"
    writer = _writing(path)
    ended = threading.Timer(0.3, writer.rollback)
    ended.start()
    try:
        store = open_desk_store(f"sqlite:///{path}", home=tmp_path, party="p")
    finally:
        ended.join()
        writer.close()
    assert store._q("PRAGMA journal_mode") == [("wal",)]
    assert store._q("SELECT party FROM desk_owner") == [("p",)]
    # The asks' shortened busy timeouts undone: the store waits its whole wait again.
    assert store._q("PRAGMA busy_timeout") == [(1000 * _store_locks.WAIT_SECONDS,)]
    store.close()


def test_a_sqlite_start_on_a_fresh_file_held_past_the_wait_fails_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other's write outlasting the store's wait: the start's one line, not a traceback."""
    monkeypatch.setattr(_store_locks, "WAIT_SECONDS", 1)
    path = tmp_path / "desk.db"
    writer = _writing(path)
    began = time.monotonic()
    try:
        with pytest.raises(ConfigError) as caught:
            open_desk_store(f"sqlite:///{path}", home=tmp_path, party="p")
    finally:
        writer.rollback()
        writer.close()
    assert 0.9 <= time.monotonic() - began < 5
    message = str(caught.value)
    assert "\n" not in message
    assert "desk.db was held by another session (a desk process mid-decision" in message


def test_a_postgresql_start_held_up_at_the_claim_fails_in_one_line(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another session holding desk_owner (ACCESS EXCLUSIVE: not even read) longer than the
    store's wait: the claim, under the start's lock_timeout, ends the start in one line (it
    had none, and stalled for as long as that session held on)."""
    import psycopg

    open_desk_store(pg_url, home=tmp_path, party="p").close()
    monkeypatch.setattr(_store_locks, "WAIT_SECONDS", 1)
    holder = psycopg.connect(pg_url)
    holder.execute("LOCK TABLE desk_owner IN ACCESS EXCLUSIVE MODE")
    try:
        began = time.monotonic()
        ended, thread = _start(pg_url, tmp_path)
        thread.join(10)  # the bound: without one, a test that hangs the suite
        waited = time.monotonic() - began
        assert len(ended) == 1, "the start hung behind the session holding desk_owner"
        [error] = ended
        assert isinstance(error, ConfigError), error
        assert 0.9 <= waited < 5
        assert "\n" not in str(error)
        assert "held by another session (a desk process mid-decision, a backup" in str(error)
    finally:
        holder.rollback()
        holder.close()
        thread.join(10)
    store = open_desk_store(pg_url, home=tmp_path, party="p")  # the lock_timeout reset
    assert store._q("SHOW lock_timeout") == [("0",)]
    store.close()


def test_a_sqlite_start_asking_for_wal_again_waits_no_longer_than_the_stores_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader taking over from the writer just before the wait ends: the change to WAL,
    asked again then, waits only what is left of the store's wait (each ask waited the whole
    busy timeout against a reader, so a start took up to twice the wait)."""
    monkeypatch.setattr(_store_locks, "WAIT_SECONDS", 1)
    path = tmp_path / "desk.db"
    with sqlite3.connect(path) as made:
        made.execute("CREATE TABLE other (x)")  # a rollback-mode file with a table to read
    made.close()
    writer = _writing(path)
    reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def reader_takes_over() -> None:
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM other").fetchone()  # SHARED, held
        writer.rollback()

    took_over = threading.Timer(0.8, reader_takes_over)
    began = time.monotonic()
    took_over.start()
    try:
        with pytest.raises(ConfigError) as caught:
            open_desk_store(f"sqlite:///{path}", home=tmp_path, party="p")
        waited = time.monotonic() - began
    finally:
        took_over.join()
        reader.rollback()
        reader.close()
        writer.close()
    assert 0.9 <= waited < 1.5
    assert "\n" not in str(caught.value)
