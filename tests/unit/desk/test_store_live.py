"""A desk on PostgreSQL outlives a restart of the server: a statement on the connection the
server closed says the database cannot be reached (pages answer 503 saying so, the ingest
keeps its batch), and the next one connects again; nothing is replaced mid-transaction."""

from __future__ import annotations

import asyncio
import contextlib
import html
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from broker._pg_live import RETRY_AFTER_S, NotConnected
from broker.desk import DeskDeps, DeskIngest, DeskStore, _record_sent, open_desk_store
from broker.desk._ingest_held import STORE_METRIC, DeliveriesHeld
from broker.desk._store_live import LiveConnection
from broker.errors import StoreUnavailable
from tests.unit.desk.conftest import SECRET, T0, Clock, FakePublisher, delivery, sign_in
from tests.unit.desk.test_decide_once import FLAG, _child_with_flag
from tests.unit.desk.test_ingest import FakeSubscriber, Shared


@pytest.fixture
def pg_url(postgres_server: str) -> Iterator[str]:
    from tests.postgres import fresh_database

    yield from fresh_database(postgres_server)


@pytest.fixture
def pg_store(pg_url: str, tmp_path: Path) -> Iterator[DeskStore]:
    s = open_desk_store(pg_url, home=tmp_path, party="p")
    yield s
    s.close()


def _restart_cuts(pg_url: str) -> None:
    """What a server restart does to the desk's connection: the server ends it."""
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def test_a_connection_the_server_closed_is_unavailable_once_then_made_again(
    pg_store: DeskStore, pg_url: str
) -> None:
    assert pg_store.add_delivery(delivery("e1"), ["c1"], T0) is True
    _restart_cuts(pg_url)
    with pytest.raises(StoreUnavailable, match="PostgreSQL database cannot be reached"):
        pg_store.records()
    assert [r.event_id for r in pg_store.records()] == ["e1"]  # connected again
    assert pg_store.add_delivery(delivery("e2"), ["c1"], T0) is True


def test_a_connection_lost_mid_decision_is_not_replaced_inside_the_transaction(
    pg_store: DeskStore, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Else the decision's later statements would each commit alone on the new connection."""
    from broker.desk import _store_locks

    def cut_then_check(query: Callable[..., Any], published: str | None) -> None:
        _restart_cuts(pg_url)
        query("SELECT 1")

    monkeypatch.setattr(_store_locks, "recorded_already", cut_then_check)
    with pytest.raises(StoreUnavailable):
        pg_store.decide(action="refer", reason="r", by="kim.ward", at=T0, child="c1")
    monkeypatch.undo()
    assert pg_store.decisions() == []  # nothing of it was written
    pg_store.decide(action="refer", reason="r", by="kim.ward", at=T0, child="c1")
    assert len(pg_store.decisions()) == 1


class _Connects:
    """The desk's connect, counted, and refused on demand (a server still down, a password
    rotated since start)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.calls = 0
        self.refuse = False

    def __call__(self, within: int) -> Any:
        from broker.desk._store_open import _connect

        self.calls += 1
        if self.refuse:
            raise NotConnected(
                "cannot connect to the desk's PostgreSQL database: connection refused"
            )
        return _connect(self.url, within)


@pytest.fixture
def live(pg_url: str) -> Iterator[tuple[LiveConnection, _Connects, list[float]]]:
    connects, now = _Connects(pg_url), [0.0]
    conn = LiveConnection(connects, where="the desk's PostgreSQL database", clock=lambda: now[0])
    yield conn, connects, now
    conn.close()


def test_a_failed_reconnect_says_why_and_is_not_tried_again_at_once(
    live: tuple[LiveConnection, _Connects, list[float]], pg_url: str
) -> None:
    """Each try blocks every page (the driver is synchronous): between tries, 503 at once."""
    conn, connects, now = live
    _restart_cuts(pg_url)
    with pytest.raises(StoreUnavailable):
        conn.execute("SELECT 1")
    connects.refuse = True
    with pytest.raises(StoreUnavailable, match=r"\(.*connection refused\)$") as told:
        conn.execute("SELECT 1")
    assert told.value.why is not None
    assert connects.calls == 2  # the first, and this try
    now[0] += RETRY_AFTER_S / 2
    with pytest.raises(StoreUnavailable, match="connection refused"):
        conn.execute("SELECT 1")
    assert connects.calls == 2  # not tried again so soon
    connects.refuse = False
    now[0] += RETRY_AFTER_S
    assert conn.execute("SELECT 1").fetchall() == [(1,)]
    assert connects.calls == 3


@pytest.mark.parametrize("begin", ["transaction()", "BEGIN"])
def test_a_connection_lost_inside_a_transaction_is_not_replaced_until_it_ends(
    live: tuple[LiveConnection, _Connects, list[float]], pg_url: str, begin: str
) -> None:
    """Even for a caller that goes on after the error: its next statements would otherwise
    run, each committed alone, on a new connection."""
    conn, connects, _ = live
    with contextlib.ExitStack() as stack:
        if begin == "BEGIN":
            conn.execute("BEGIN")
        else:
            stack.enter_context(contextlib.suppress(StoreUnavailable))
            stack.enter_context(conn.transaction())
        _restart_cuts(pg_url)
        with pytest.raises(StoreUnavailable):
            conn.execute("SELECT 1")
        with pytest.raises(StoreUnavailable):
            conn.execute("INSERT INTO nowhere VALUES (1)")
        assert connects.calls == 1  # never connected again inside it
        if begin == "BEGIN":
            with pytest.raises(StoreUnavailable):
                conn.execute("ROLLBACK")  # gone with the connection: ended all the same
    assert conn.execute("SELECT 1").fetchall() == [(1,)]  # after it: connected again
    assert connects.calls == 2


class _Unreachable(DeskStore):
    """A store whose database is away for the first ``times`` deliveries."""

    def __init__(self, inner: DeskStore, times: int) -> None:
        self.__dict__.update(inner.__dict__)
        self.away = times

    def add_delivery(self, *args: Any, **kwargs: Any) -> bool:
        if self.away:
            self.away -= 1
            raise StoreUnavailable("the desk's PostgreSQL database")
        return super().add_delivery(*args, **kwargs)


async def test_the_ingest_keeps_a_batch_it_could_not_store_and_reads_nothing_more_until_it_has(
    store: DeskStore, clock: Clock
) -> None:
    away = _Unreachable(store, times=2)
    sub = FakeSubscriber()
    ingest = DeskIngest(away, sub, linkage_key=SECRET, clock=clock)  # type: ignore[arg-type]  # the fake
    sub.batches = [[Shared(delivery("e1")), Shared(delivery("e2"))], [Shared(delivery("e3"))]]
    for _ in range(2):
        with pytest.raises(StoreUnavailable):
            await ingest.poll_once(0)
    assert (sub.commits, len(sub.batches)) == (0, 1)  # not committed, nothing more read
    assert await ingest.poll_once(0) == 2  # the same batch, once the database is back
    assert sub.commits == 1
    assert await ingest.poll_once(0) == 1
    assert sorted(r.event_id for r in store.records()) == ["e1", "e2", "e3"]


def test_a_page_while_the_database_is_away_says_so_with_503(
    make_client: Callable[..., tuple[TestClient, DeskDeps]], store: DeskStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    made, _ = make_client()
    # As a browser sees it: the app's error page, not the exception the test client re-raises.
    client = TestClient(made.app, base_url=str(made.base_url), raise_server_exceptions=False)
    sign_in(client)

    def away(*_: Any, **__: Any) -> Any:
        raise StoreUnavailable("the desk's PostgreSQL database")

    monkeypatch.setattr(DeskStore, "records_page", away)
    with capture_logs() as logs:
        r = client.get("/records")
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "10"
    assert "cannot reach its database" in r.text
    assert "Something went wrong" not in r.text
    assert [e["event"] for e in logs if e["log_level"] != "info"] == ["desk_store_unavailable"]


class _GoesAway(FakePublisher):
    """Kafka takes the event, then the desk's database goes: every statement fails after."""

    def __init__(self) -> None:
        super().__init__()
        self.away = False

    async def publish(self, event: Any) -> None:
        await super().publish(event)
        self.away = True


@pytest.fixture
def publisher() -> _GoesAway:
    """This module's: the conftest's, whose database can go away once it has sent."""
    return _GoesAway()


def test_a_referral_sent_as_the_database_goes_away_is_the_sent_not_recorded_page(
    make_client: Callable[..., tuple[TestClient, DeskDeps]], store: DeskStore,
    publisher: _GoesAway, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Sent, then not recorded: the page says so, with Record it and the flags it settles by
    id (not the generic 503 page, which invites a second send), and the desk keeps trying,
    so it is recorded once the database is back."""
    monkeypatch.setattr(_record_sent, "RETRY_SECONDS", 0.05)
    child = _child_with_flag(store)
    query = DeskStore._q

    def away(self: DeskStore, sql: str, params: Any = ()) -> Any:
        if publisher.away:
            raise StoreUnavailable("the desk's PostgreSQL database")
        return query(self, sql, params)

    monkeypatch.setattr(DeskStore, "_q", away)
    client, _ = make_client()
    with client:  # one event loop for the requests and the retry
        token = sign_in(client)
        form = {"csrf": token, "action": "refer", "reason": "Needs a hub.", "flag": FLAG}
        r = client.post(f"/child/{child}/decide", data=form)
        page = html.unescape(r.text)
        assert r.status_code == 503
        assert "was sent but not recorded" in page
        assert "could not be reached" in page
        assert "keeps trying to record it by itself" in page
        assert FLAG in page  # by id: its title cannot be read
        publisher.away = False  # the database is back
        deadline = time.monotonic() + 5
        while not store.decisions(child=child) and time.monotonic() < deadline:
            client.get("/login")  # lets the loop run
            time.sleep(0.05)
    [decision] = store.decisions(child=child)
    assert decision.published_event == publisher.events[0]["event_id"]
    assert len(publisher.events) == 1  # sent once


class _Waiting(FakeSubscriber):
    """As Kafka's consumer does, a poll waits (here: goes round the event loop once)."""

    async def poll(self, wait: float, *, commit: bool = True) -> list[Shared]:
        await asyncio.sleep(0)
        return await super().poll(wait, commit=commit)


async def test_the_ingest_says_the_database_is_away_once_and_back_once_with_a_gauge(
    store: DeskStore, clock: Clock
) -> None:
    """A gauge for the alert (AccordDeskStoreUnavailable), one log line each way."""
    registry = CollectorRegistry()
    away = _Unreachable(store, times=1)
    sub = _Waiting()
    sub.batches = [[Shared(delivery("e1"))]]
    ingest = DeskIngest(away, sub, linkage_key=SECRET, clock=clock,  # type: ignore[arg-type]  # the fake
                        held=DeliveriesHeld(registry))  # fmt: skip
    stop = asyncio.Event()
    with capture_logs() as logs:
        task = asyncio.create_task(ingest.run(stop, interval=0.01))
        for _ in range(100):
            await asyncio.sleep(0.01)
            if registry.get_sample_value(STORE_METRIC) == 1:
                break
        assert registry.get_sample_value(STORE_METRIC) == 1
        for _ in range(300):
            await asyncio.sleep(0.01)
            if store.records():
                break
        for _ in range(100):
            await asyncio.sleep(0.01)
            if registry.get_sample_value(STORE_METRIC) == 0:
                break
        stop.set()
        await task
    assert registry.get_sample_value(STORE_METRIC) == 0
    events = [e["event"] for e in logs]
    assert (events.count("desk_store_unavailable"), events.count("desk_store_back")) == (1, 1)
