"""PostgreSQL going away under a client, on the session's shared server (never restarted).

A restart is what ``pg_terminate_backend`` does to the client: the server ends its session.
One that lasts is a database that refuses connections meanwhile (``ALLOW_CONNECTIONS``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg


def end_sessions(url: str) -> None:
    """What a server restart does to every other client of ``url``'s database."""
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@contextlib.contextmanager
def away(server: str, url: str) -> Iterator[None]:
    """``url``'s database down for the block: its sessions ended, no new one let in.
    ``server``: a URL of another database on the same server, to say so from."""
    name = url.rpartition("/")[2]
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
