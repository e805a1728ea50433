"""Why a PostgreSQL connection failed, in plain words and with what to do: the audit index's
and a desk store's one line (``cannot connect to … : <reason>``).

psycopg raises ``OperationalError`` for every failure to connect, with no SQLSTATE (the
server's ``FATAL`` arrives as text before a session exists), so the reason is read from
libpq's message. The message itself is never passed on: it names hosts, users and databases
the way libpq chooses, and a future libpq may say more; only the fixed phrases below are.
"""

from __future__ import annotations

import re

__all__ = ["why_not_connected"]

# First match wins, checked in this order: libpq joins one message per host it tried, and an
# answer from a server (a refused password) says more than a host that did not answer.
_REASONS: tuple[tuple[str, str], ...] = (
    (r"password authentication failed",
     "authentication failed for the user: check the password (PGPASSWORD, ~/.pgpass, or "
     "the one in the URL)"),
    (r"no password supplied",
     "the server asks for a password and none was given: set PGPASSWORD or add a ~/.pgpass "
     "line for this host, port, database and user"),
    (r"role \S+ does not exist",
     "the server has no such user (role): check the user name in the URL"),
    (r"authentication failed",
     "authentication failed for the user: check the user and its credentials"),
    (r"no pg_hba\.conf entry",
     "the server's access rules (pg_hba.conf) do not let this user in from this host, or "
     "not without SSL: ask its administrator, or add ?sslmode=require"),
    (r"database \S+ does not exist",
     "the database does not exist on that server: check its name in the URL, or create it "
     "(createdb, or CREATE DATABASE)"),
    (r"permission denied for database",
     "the user may not connect to that database: grant it CONNECT"),
    (r"too many clients|too many connections",
     "the server has no connection to spare: try again later, or raise max_connections"),
    (r"starting up|shutting down|in recovery mode|not yet accepting",
     "the server is starting up or shutting down: try again shortly"),
    (r"ssl was required|ssl negotiation|ssl error|certificate",
     "the SSL handshake failed: check the URL's sslmode (and sslrootcert) against the "
     "server's SSL set-up"),
    (r"connection refused",
     "connection refused: nothing listens at that host and port; check the port, and that "
     "PostgreSQL is running and listens on that address (listen_addresses)"),
    (r"failed to resolve host|could not translate host name|name or service not known"
     r"|temporary failure in name resolution|nodename nor servname",
     "host not found: check the host name in the URL"),
    (r"timeout expired|timed out",
     "timeout: no answer from that host and port; check them, and any firewall in between"),
    (r"no route to host|network is unreachable|host is unreachable",
     "the host cannot be reached over the network: check the host name and the route to it"),
    (r"no such file or directory",
     "no server at that socket: check the host (a socket's folder) and port, and that "
     "PostgreSQL is running"),
)  # fmt: skip


def why_not_connected(exc: BaseException) -> str:
    """The reason ``psycopg.connect`` raised ``exc``, in plain words with what to do; never
    the driver's text (nor, therefore, a password in a URL libpq quoted)."""
    text = str(exc).lower()
    for pattern, reason in _REASONS:
        if re.search(pattern, text):
            return reason
    if type(exc).__name__ == "ProgrammingError":
        # Raised before any connection: libpq could not read the URL's options.
        return "the driver cannot read the URL: check its ?key=value options"
    return (
        f"{type(exc).__name__} (a reason Accord does not recognise): psql with the same "
        "settings prints the driver's own words"
    )
