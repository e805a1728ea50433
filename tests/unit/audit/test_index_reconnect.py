"""The audit index on PostgreSQL outlives a restart of the server: a call on the connection
the server ended fails in one line of Accord's (``IndexUnavailable``, never the driver's
text), the next one connects again; a batch cut mid-way writes nothing; a following indexer
waits, logs the outage once each way and reads on from what the index committed (a restart
and an outage as ``tests.pg_outage`` makes them)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from structlog.testing import capture_logs

from broker import _pg_live
from broker.audit import KeystoreAuditVerifier as Verifier
from broker.errors import AuditError, IndexUnavailable
from broker.governance import AuditStore, Indexer, _index, _sql, _sql_live, open_store
from broker.governance._store import VerifyRun
from broker.keys import FileKeyStore
from broker.linkage import Linker
from tests.pg_outage import away, end_sessions
from tests.unit.audit.conftest import FakeConsumer, FakeKafka, Msg, Part, on_topic, worker_chain

TOPIC = "accord.audit"


@pytest.fixture
def pg_url(postgres_server: str) -> Iterator[str]:
    from tests.postgres import fresh_database

    yield from fresh_database(postgres_server)


@pytest.fixture
def pg_store(pg_url: str, audit_home: Any) -> Iterator[AuditStore]:
    s = open_store(pg_url, home=audit_home)
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tried again at once, not after seconds: the waits are not what is tested here."""
    monkeypatch.setattr(_pg_live, "RETRY_AFTER_S", 0.0)
    monkeypatch.setattr(_index, "_STORE_RETRY_S", (0.05,))


def _one_line(exc: BaseException) -> None:
    text = str(exc)
    assert "\n" not in text
    assert "SELECT" not in text  # never the statement
    assert "INSERT" not in text
    assert exc.__cause__ is None  # nor the driver's error behind
    assert exc.__context__ is None


def test_a_store_whose_session_the_server_ended_answers_the_next_call(
    pg_store: AuditStore, pg_url: str
) -> None:
    before = pg_store.offsets(TOPIC)
    end_sessions(pg_url)
    # A read outside a transaction is tried once more on a new connection: no failure at all.
    assert pg_store.offsets(TOPIC) == before
    end_sessions(pg_url)
    run = VerifyRun(datetime(2026, 11, 22, tzinfo=UTC), "kim", "cli", True, 0, 0)
    with pytest.raises(IndexUnavailable) as err:
        pg_store.keep_verification(run)  # a write is never tried twice
    _one_line(err.value)
    assert str(err.value).endswith("cannot be reached (the connection was lost)")
    pg_store.keep_verification(run)  # the next call connects again
    assert pg_store.last_verification() == run


def test_while_the_server_is_away_each_call_fails_in_one_line_then_it_answers_again(
    pg_store: AuditStore, pg_url: str, postgres_server: str
) -> None:
    with away(postgres_server, pg_url):
        for _ in range(2):
            with pytest.raises(IndexUnavailable) as err:
                pg_store.count()
            _one_line(err.value)
            assert "postgresql://" in str(err.value)
    assert pg_store.count() == 0


def test_attempts_to_connect_again_are_spaced_not_one_per_call(
    pg_store: AuditStore, pg_url: str, postgres_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_pg_live, "RETRY_AFTER_S", 60.0)
    live = pg_store._conn  # type: ignore[attr-defined]  # the LiveIndexConnection
    attempts: list[int] = []
    connect = live._connect

    def counted(within: int) -> Any:
        attempts.append(within)
        return connect(within)

    live._connect = counted
    with away(postgres_server, pg_url):
        for _ in range(5):
            with pytest.raises(IndexUnavailable):
                pg_store.count()
    assert attempts == [_pg_live.RECONNECT_WITHIN_S]  # then refused at once, for a while
    with pytest.raises(IndexUnavailable):
        pg_store.count()  # back, but the wait is not over
    live._clock = lambda: 1e12  # the wait over
    assert pg_store.count() == 0


async def test_a_batch_cut_mid_way_writes_nothing_and_is_written_whole_next_time(
    pg_store: AuditStore, pg_url: str, keys: FileKeyStore, linker: Linker, verifier: Verifier,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    records = worker_chain(linker, keys)
    write = _sql.write_batch
    cut = [True]

    def cut_after_the_first_row(q: Any, batch: Any) -> None:
        def q_then_cut(sql: str, params: Any) -> Any:
            rows = q(sql, params)
            if cut[0]:
                cut[0] = False
                end_sessions(pg_url)
            return rows

        write(q_then_cut, batch)

    monkeypatch.setattr(_sql, "write_batch", cut_after_the_first_row)
    kafka = FakeKafka(on_topic(records))
    with pytest.raises(IndexUnavailable) as err:  # a run to the end says so and ends
        await Indexer(pg_store, verifier, kafka, topic=TOPIC).run(follow=False)  # type: ignore[arg-type]  # a fake of Kafka
    _one_line(err.value)
    assert (pg_store.count(), pg_store.offsets(TOPIC)) == (0, {})  # rolled back, all of it
    summary = await Indexer(pg_store, verifier, kafka, topic=TOPIC).run(follow=False)  # type: ignore[arg-type]  # a fake of Kafka
    assert (summary.indexed, summary.duplicates, summary.breaks) == (len(records), 0, [])
    assert pg_store.count() == len(records)


def test_a_copy_read_only_stays_read_only_on_the_connection_made_again(
    pg_store: AuditStore, pg_url: str, audit_home: Any
) -> None:
    copy = open_store(pg_url, home=audit_home, read_only=True)
    try:
        end_sessions(pg_url)
        assert copy.count() == 0  # connected again
        run = VerifyRun(datetime(2026, 11, 22, tzinfo=UTC), "kim", "cli", True, 0, 0)
        with pytest.raises(AuditError, match=r"refused it \(ReadOnlySqlTransaction\)"):
            copy.keep_verification(run)
    finally:
        copy.close()


def test_the_sqlite_index_keeps_its_own_connection(audit_home: Any) -> None:
    """Nothing of this is SQLite's: a file has no server to go away."""
    store = open_store(None, home=audit_home)
    try:
        assert type(store._conn) is sqlite3.Connection  # type: ignore[attr-defined]
    finally:
        store.close()


class _Waiting(FakeConsumer):
    """A fetch that waits, as Kafka's does: a following indexer lets other tasks run."""

    async def getmany(self, *tps: Part, max_records: int, **kw: int) -> dict[Part, list[Msg]]:
        await asyncio.sleep(0.005)
        return await super().getmany(*tps, max_records=max_records, **kw)


class _WaitingKafka(FakeKafka):
    def consumer(self, **_: Any) -> FakeConsumer:
        return _Waiting(self)


async def _until(done: Any, what: str) -> None:
    for _ in range(750):
        if done():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within 15 s: {what}")


async def test_a_following_indexer_waits_out_the_server_and_indexes_what_came_meanwhile(
    pg_store: AuditStore, pg_url: str, postgres_server: str, keys: FileKeyStore,
    linker: Linker, verifier: Verifier,
) -> None:  # fmt: skip
    first = worker_chain(linker, keys, chain="worker:w1")
    later = worker_chain(linker, keys, chain="worker:w2")
    kafka = _WaitingKafka(on_topic(first))
    indexer = Indexer(pg_store, verifier, kafka, topic=TOPIC, max_batch=4)  # type: ignore[arg-type]  # a fake of Kafka
    stop = asyncio.Event()
    with capture_logs() as logs:
        running = asyncio.create_task(indexer.run(follow=True, stop=stop))
        try:
            await _until(lambda: pg_store.count() == len(first), "the first records indexed")
            with away(postgres_server, pg_url):
                kafka.log += on_topic(later, start=len(first))  # written while it is away
                await _until(lambda: indexer.store_away, "the outage noticed")
                assert indexer.ready().reason == "index store unavailable"
                assert indexer.live().ok  # waiting on purpose: no restart wanted
                await asyncio.sleep(0.3)  # several tries, each failing
                assert not running.done()
            await _until(lambda: not indexer.store_away, "the index answering again")
            total = len(first) + len(later)
            await _until(lambda: pg_store.count() == total, "what came meanwhile indexed")
        finally:
            stop.set()
            summary = await asyncio.wait_for(running, timeout=10)
    events = [e["event"] for e in logs if e["event"].startswith("audit_index_store")]
    assert events == ["audit_index_store_unavailable", "audit_index_store_back"]
    assert (summary.indexed, summary.duplicates, summary.breaks) == (total, 0, [])
    assert pg_store.offsets(TOPIC) == {0: total}
    assert not repr(logs).count("SELECT")  # no statement, no driver text in the log


async def test_a_following_indexer_cut_mid_batch_indexes_each_record_once(
    pg_store: AuditStore, pg_url: str, keys: FileKeyStore, linker: Linker, verifier: Verifier,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    records = worker_chain(linker, keys)
    write = _sql.write_batch
    batches: list[int] = []

    def cut_one(q: Any, batch: Any) -> None:
        batches.append(len(batch.records))
        cut = len(batches) == 2  # the second batch, after its first row

        def q_then_cut(sql: str, params: Any) -> Any:
            nonlocal cut
            rows = q(sql, params)
            if cut:
                cut = False
                end_sessions(pg_url)
            return rows

        write(q_then_cut, batch)

    monkeypatch.setattr(_sql, "write_batch", cut_one)
    kafka = _WaitingKafka(on_topic(records))
    indexer = Indexer(pg_store, verifier, kafka, topic=TOPIC, max_batch=3)  # type: ignore[arg-type]  # a fake of Kafka
    stop = asyncio.Event()
    with capture_logs() as logs:
        running = asyncio.create_task(indexer.run(follow=True, stop=stop))
        try:
            await _until(lambda: pg_store.count() == len(records), "every record indexed")
        finally:
            stop.set()
            summary = await asyncio.wait_for(running, timeout=10)
    assert len(batches) > 2  # the cut batch, and it again
    assert batches[1] > 0
    events = [e["event"] for e in logs if e["event"].startswith("audit_index_store")]
    assert events == ["audit_index_store_unavailable", "audit_index_store_back"]
    assert (summary.indexed, summary.duplicates, summary.breaks) == (len(records), 0, [])
    assert pg_store.offsets(TOPIC) == {0: len(records)}


def test_the_connection_gives_up_on_a_network_cut_rather_than_wait_for_ever(
    pg_store: AuditStore,
) -> None:
    """Review r46d: a server gone silent (a network cut, no reset) held a statement, and the
    console's event loop, for the kernel's ~15 minutes: keepalives and a TCP user timeout."""
    conn = pg_store._conn.connection  # type: ignore[attr-defined]  # the live psycopg one
    params = conn.info.get_parameters()
    assert params["keepalives"] == "1"
    assert params["tcp_user_timeout"] == str(_sql_live.CUT_AFTER_S * 1000)
