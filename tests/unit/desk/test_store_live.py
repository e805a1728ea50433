"""A desk on PostgreSQL outlives a restart of the server: a statement on the connection the
server closed says the database cannot be reached (pages answer 503 saying so, the ingest
keeps its batch), and the next one connects again; nothing is replaced mid-transaction."""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from broker.desk import DeskDeps, DeskIngest, DeskStore, _record_sent, children_in, open_desk_store
from broker.errors import StoreUnavailable
from tests.unit.desk.conftest import SECRET, T0, Clock, FakePublisher, delivery, sign_in
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


def test_an_outcome_sent_while_the_database_is_away_is_recorded_by_the_desk_once_it_is_back(
    make_client: Callable[..., tuple[TestClient, DeskDeps]], store: DeskStore,
    publisher: FakePublisher, clock: Clock, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Sent, then not recorded: the page says so (not a bare 503) and the desk keeps trying,
    as for a busy database: a new outcome would be a second."""
    monkeypatch.setattr(_record_sent, "RETRY_SECONDS", 0.05)
    referral = delivery("r1", recipient="cog-west-bromwich", type="coordination.referral")
    store.add_delivery(referral, children_in(referral.view, SECRET), datetime.now(UTC))
    decide = DeskStore.decide
    away = [1]

    def away_once(self: DeskStore, **kwargs: Any) -> Any:
        if away:
            away.pop()
            raise StoreUnavailable("the desk's PostgreSQL database")
        return decide(self, **kwargs)

    monkeypatch.setattr(DeskStore, "decide", away_once)
    client, _ = make_client(kind="hub", party="cog-west-bromwich")
    with client:  # one event loop for the requests and the retry
        token = sign_in(client)
        r = client.post(
            "/referral/r1/outcome",
            data={"csrf": token, "outcome": "support_offered", "summary": "Visit booked."},
        )
        assert r.status_code == 503
        assert "could not be reached" in html.unescape(r.text)
        assert "keeps trying to record it by itself" in html.unescape(r.text)
        deadline = time.monotonic() + 5
        while not store.decisions(subject_event="r1") and time.monotonic() < deadline:
            client.get("/login")  # lets the loop run
            time.sleep(0.05)
    [decision] = store.decisions(subject_event="r1")
    assert decision.published_event == publisher.events[0]["event_id"]
    assert len(publisher.events) == 1  # sent once
