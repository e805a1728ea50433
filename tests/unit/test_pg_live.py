"""The one reconnecting PostgreSQL connection both stores use (``broker._pg_live``): each keeps
its own TCP cut-off, and no error of either carries the driver's behind it (whose text can
quote the statement, or the URL's password), not even as a suppressed ``__context__``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.desk import open_desk_store
from broker.errors import ConfigError, StoreUnavailable
from broker.governance import open_store
from tests.pg_outage import end_sessions


@pytest.fixture
def pg_url(postgres_server: str) -> Iterator[str]:
    from tests.postgres import fresh_database

    yield from fresh_database(postgres_server)


def _keepalives(conn: object) -> tuple[str, ...]:
    params = conn.info.get_parameters()  # type: ignore[attr-defined]  # a psycopg connection
    names = ("keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count")
    return (*(params[n] for n in names), params["tcp_user_timeout"])


def test_each_store_keeps_its_own_tcp_cut_off(pg_url: str, tmp_path: Path) -> None:
    desk = open_desk_store(pg_url, home=tmp_path, party="p")
    index = open_store(pg_url, home=tmp_path)
    try:
        assert _keepalives(desk._conn.connection) == ("1", "5", "2", "3", "15000")  # type: ignore[attr-defined]
        assert _keepalives(index._conn.connection) == ("1", "10", "5", "3", "30000")  # type: ignore[attr-defined]
    finally:
        desk.close()
        index.close()


def test_a_desk_that_cannot_connect_says_why_with_no_driver_error_behind(tmp_path: Path) -> None:
    url = "postgresql://kim:s3cret-pw@127.0.0.1:1/desk?connect_timeout=2"
    with pytest.raises(ConfigError) as told:
        open_desk_store(url, home=tmp_path, party="p")
    assert str(told.value).startswith("cannot connect to the desk's PostgreSQL database: ")
    assert "connection refused" in str(told.value)
    assert told.value.__cause__ is None
    assert told.value.__context__ is None  # the driver's, which may quote the password


def test_a_desk_connection_lost_says_so_with_no_driver_error_behind(
    pg_url: str, tmp_path: Path
) -> None:
    store = open_desk_store(pg_url, home=tmp_path, party="p")
    try:
        end_sessions(pg_url)
        with pytest.raises(StoreUnavailable) as told:
            store.records()
        assert str(told.value) == "the desk's PostgreSQL database cannot be reached"
        assert told.value.__cause__ is None
        assert told.value.__context__ is None  # the driver's, which may quote the statement
        assert store.records() == []  # connected again
    finally:
        store.close()
