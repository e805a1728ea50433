"""The desk store's decision transaction when another writer holds the database: it waits a
bounded time, then raises StoreBusy with nothing recorded, and leaves the one shared
connection fit for the next decision."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.desk import DeskStore, Flag, _store_locks, open_desk_store
from broker.desk._store_locks import one_transaction
from broker.errors import StoreBusy
from tests.unit.desk.conftest import T0


def _flag(store: DeskStore) -> None:
    store.add_flag(
        Flag(
            flag_id="f1", party="p", rule="r", title="t", child="c1", event_ids=("e1",),
            trigger_event_id="e1", raised_at=T0, window_seconds=86400,
        ),
        T0,
    )  # fmt: skip


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[DeskStore]:
    s = open_desk_store(None, home=tmp_path, party="p")
    yield s
    s.close()


def test_a_commit_that_fails_leaves_no_transaction_open_and_the_next_decision_is_recorded(
    sqlite_store: DeskStore, tmp_path: Path
) -> None:
    """Without WAL (a filesystem that cannot keep it), a reader mid-read outlasting the busy
    timeout fails the COMMIT: that decision is StoreBusy, rolled back, and the next one, once
    the reader is done, is recorded (not refused as "within a transaction" for good)."""
    conn = sqlite_store._conn
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("PRAGMA busy_timeout=100")
    _flag(sqlite_store)
    reader = sqlite3.connect(tmp_path / "desk" / "p.db", isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT * FROM desk_flags").fetchall()
    with pytest.raises(StoreBusy, match="nothing was recorded"):
        sqlite_store.decide(action="signpost", reason="r", by="kim", at=T0, flag_ids=["f1"],
                            child="c1")  # fmt: skip
    assert not conn.in_transaction
    reader.execute("COMMIT")
    reader.close()
    assert sqlite_store.decisions(child="c1") == []
    sqlite_store.decide(action="signpost", reason="r", by="sam", at=T0, flag_ids=["f1"],
                        child="c1")  # fmt: skip
    assert [d.decided_by for d in sqlite_store.decisions(child="c1")] == ["sam"]


class _Failing:
    """A SQLite connection whose COMMIT and ROLLBACK both fail."""

    in_transaction = False

    def execute(self, sql: str) -> Any:
        if sql == "BEGIN IMMEDIATE":
            self.in_transaction = True
        elif sql == "COMMIT":
            raise sqlite3.OperationalError("disk I/O error")
        elif sql == "ROLLBACK":
            raise sqlite3.OperationalError("cannot rollback - no transaction is active")


def test_a_rollback_that_fails_too_does_not_hide_why_the_transaction_ended() -> None:
    with (
        pytest.raises(sqlite3.OperationalError, match="disk I/O error"),
        one_transaction(_Failing(), postgresql=False),
    ):
        pass


def test_a_sqlite_store_waits_for_another_writer_as_long_as_the_store_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver's default (5 s, the store's too) is not relied on: the wait blocks the
    desk's event loop. Set to 1 s, the store waits about 1 s, then StoreBusy."""
    monkeypatch.setattr(_store_locks, "WAIT_SECONDS", 1)
    store = open_desk_store(None, home=tmp_path, party="p")
    try:
        [(ms,)] = store._conn.execute("PRAGMA busy_timeout").fetchall()
        assert ms == 1000
        _flag(store)
        holder = sqlite3.connect(tmp_path / "desk" / "p.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        began = time.monotonic()
        with pytest.raises(StoreBusy):
            store.decide(action="signpost", reason="r", by="kim", at=T0, flag_ids=["f1"],
                         child="c1")  # fmt: skip
        assert 0.9 <= time.monotonic() - began < 3
        holder.execute("ROLLBACK")
        holder.close()
    finally:
        store.close()


@pytest.fixture
def pg_url(postgres_server: str) -> Iterator[str]:
    from tests.postgres import fresh_database

    yield from fresh_database(postgres_server)


def test_a_postgresql_flag_row_held_by_a_stalled_desk_process_is_waited_for_a_bounded_time(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not for ever (every page would wait with it): StoreBusy after the store's wait,
    nothing recorded; the store decides again once the row is let go."""
    import psycopg

    monkeypatch.setattr(_store_locks, "WAIT_SECONDS", 1)
    store = open_desk_store(pg_url, home=tmp_path, party="p")
    _flag(store)
    outcome: list[BaseException | None] = []

    def decide() -> None:
        try:
            store.decide(action="signpost", reason="r", by="kim", at=T0, flag_ids=["f1"],
                         child="c1")  # fmt: skip
            outcome.append(None)
        except Exception as exc:  # noqa: BLE001  # whatever it is, the test says it
            outcome.append(exc)

    with psycopg.connect(pg_url) as stalled:  # mid-decision, its row lock held
        stalled.execute("SELECT flag_id FROM desk_flags WHERE flag_id = 'f1' FOR UPDATE")
        began = time.monotonic()
        waiting = threading.Thread(target=decide, daemon=True)
        waiting.start()
        waiting.join(10)
        waited = time.monotonic() - began
        stalled.rollback()
    assert len(outcome) == 1
    assert isinstance(outcome[0], StoreBusy), outcome
    assert waited < 5
    assert store.decisions(child="c1") == []
    store.decide(action="signpost", reason="r", by="sam", at=T0, flag_ids=["f1"], child="c1")
    assert [d.decided_by for d in store.decisions(child="c1")] == ["sam"]
    store.close()


def test_a_decision_asked_not_to_wait_is_busy_at_once_and_the_next_waits_as_usual(
    sqlite_store: DeskStore, tmp_path: Path
) -> None:
    """The desk's background retry: busy at once while another process holds the database
    (the wait would stall the event loop), and the shared connection's wait is kept."""
    conn = sqlite_store._conn
    conn.execute("PRAGMA busy_timeout=300")
    _flag(sqlite_store)
    holder = sqlite3.connect(tmp_path / "desk" / "p.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    began = time.monotonic()
    with pytest.raises(StoreBusy):
        sqlite_store.decide(action="signpost", reason="r", by="kim", at=T0, flag_ids=["f1"],
                            child="c1", wait_seconds=0)  # fmt: skip
    assert time.monotonic() - began < 0.2
    assert conn.execute("PRAGMA busy_timeout").fetchall() == [(300,)]
    began = time.monotonic()
    with pytest.raises(StoreBusy):
        sqlite_store.decide(action="signpost", reason="r", by="kim", at=T0, flag_ids=["f1"],
                            child="c1")  # fmt: skip
    assert time.monotonic() - began >= 0.25
    holder.execute("ROLLBACK")
    holder.close()
    sqlite_store.decide(action="signpost", reason="r", by="sam", at=T0, flag_ids=["f1"],
                        child="c1", wait_seconds=0)  # fmt: skip
    assert [d.decided_by for d in sqlite_store.decisions(child="c1")] == ["sam"]


def test_a_postgresql_decision_asked_not_to_wait_is_busy_at_once_not_waiting_for_ever(
    pg_url: str, tmp_path: Path
) -> None:
    """PostgreSQL reads a lock_timeout of 0 as no limit: not waiting must not become that."""
    import psycopg

    store = open_desk_store(pg_url, home=tmp_path, party="p")
    _flag(store)
    outcome: list[BaseException | None] = []

    def decide() -> None:
        try:
            store.decide(action="signpost", reason="r", by="kim", at=T0, flag_ids=["f1"],
                         child="c1", wait_seconds=0)  # fmt: skip
            outcome.append(None)
        except Exception as exc:  # noqa: BLE001  # whatever it is, the test says it
            outcome.append(exc)

    with psycopg.connect(pg_url) as stalled:  # mid-decision, its row lock held
        stalled.execute("SELECT flag_id FROM desk_flags WHERE flag_id = 'f1' FOR UPDATE")
        began = time.monotonic()
        waiting = threading.Thread(target=decide, daemon=True)
        waiting.start()
        waiting.join(10)
        waited = time.monotonic() - began
        stalled.rollback()
    assert len(outcome) == 1
    assert isinstance(outcome[0], StoreBusy), outcome
    assert waited < 1
    store.decide(action="signpost", reason="r", by="sam", at=T0, flag_ids=["f1"], child="c1")
    assert [d.decided_by for d in store.decisions(child="c1")] == ["sam"]
    store.close()
