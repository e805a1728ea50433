"""A PostgreSQL index (or desk store) that cannot be reached says why in plain words and what
to do, in one line, never with the password: a wrong password, a wrong port, a host or
database that is not there, a timeout."""

from __future__ import annotations

import os
import time
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from broker.errors import AuditError, ConfigError
from broker.governance import open_store, why_not_connected
from tests.unit.audit.conftest import Run

# What psycopg 3 with libpq 18 says (the messages checked here are libpq's, names changed).
_SERVER = 'connection failed: connection to server at "127.0.0.1", port 5432 failed: '


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (_SERVER + 'FATAL:  password authentication failed for user "s3cret-user"',
         "authentication failed for the user: check the password"),
        (_SERVER + "fe_sendauth: no password supplied",
         "the server asks for a password and none was given"),
        (_SERVER + 'FATAL:  role "nobody" does not exist',
         "the server has no such user (role)"),
        (_SERVER + 'FATAL:  database "audit" does not exist',
         "the database does not exist on that server"),
        (_SERVER + "Connection refused\n\tIs the server running on that host and accepting "
         "TCP/IP connections?", "connection refused: nothing listens at that host and port"),
        ("failed to resolve host 'db.example': [Errno -2] Name or service not known",
         "host not found: check the host name"),
        (_SERVER + 'could not translate host name "db.example" to address: Name or service '
         "not known", "host not found: check the host name"),
        ("connection timeout expired", "timeout: no answer from that host and port"),
        (_SERVER + 'FATAL:  no pg_hba.conf entry for host "10.0.0.9", user "a", database "b"',
         "the server's access rules (pg_hba.conf) do not let this user in"),
        (_SERVER + "FATAL:  sorry, too many clients already",
         "the server has no connection to spare"),
        (_SERVER + "FATAL:  the database system is starting up",
         "the server is starting up or shutting down"),
        (_SERVER + "server does not support SSL, but SSL was required",
         "the SSL handshake failed"),
        ('connection to server on socket "/run/postgresql/.s.PGSQL.5432" failed: No such file '
         "or directory", "no server at that socket"),
    ],
)  # fmt: skip
def test_each_driver_failure_to_connect_is_named_in_plain_words(message: str, reason: str) -> None:
    said = why_not_connected(psycopg.OperationalError(message))
    assert said.startswith(reason)
    assert "s3cret" not in said  # Accord's words, not the driver's
    assert "\n" not in said


def test_a_server_that_answers_is_named_before_a_host_that_did_not() -> None:
    """libpq tries each host of a multi-host URL and joins what each said."""
    message = (
        'connection failed: connection to server at "10.0.0.1", port 5432 failed: Connection '
        "refused\nMultiple connection attempts failed. All failures were:\n- host: ... "
        'failed: FATAL:  password authentication failed for user "accord"'
    )
    assert why_not_connected(psycopg.OperationalError(message)).startswith("authentication failed")


def test_a_failure_accord_does_not_recognise_names_the_class_not_the_drivers_text() -> None:
    said = why_not_connected(psycopg.OperationalError("something new: password=s3cret"))
    assert said.startswith("OperationalError (a reason Accord does not recognise)")
    assert "s3cret" not in said


@pytest.fixture
def password_role(postgres_server: str) -> Iterator[str]:
    """A login role the server asks a password of (scram), on the session's server, whose
    other roles stay trusted; its URL with the right password, ``right-pw``."""
    if os.environ.get("ACCORD_TEST_POSTGRES_URL"):
        # Each xdist worker starts its own private server; a given one is shared by them all,
        # and workers rewriting its one pg_hba.conf at once would undo each other's rules.
        pytest.skip("rewrites pg_hba.conf: only on the private server tests/postgres.py starts")
    name = f"pw_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        hba = Path(str(conn.execute("SHOW hba_file").fetchone()[0]))  # type: ignore[index]
    try:
        old = hba.read_text()
        hba.write_text(f"host all {name} 127.0.0.1/32 scram-sha-256\n{old}")
    except OSError:
        pytest.skip("the server's pg_hba.conf is not this test's to change")
    try:
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {name} LOGIN PASSWORD 'right-pw'")
        _reload(postgres_server)
        host = postgres_server.split("@", 1)[1]
        _until_refused(f"postgresql://{name}:not-the-pw@{host}")
        yield f"postgresql://{name}:right-pw@{host}"
    finally:
        hba.write_text(old)
        _reload(postgres_server)
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute(f"DROP ROLE IF EXISTS {name}")


def _reload(server: str) -> None:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute("SELECT pg_reload_conf()")


def _until_refused(wrong: str, *, within: float = 10.0) -> None:
    """Until the server refuses ``wrong`` (a wrong password): the postmaster rereads
    pg_hba.conf on SIGHUP, not at once, and until then trust lets any password in."""
    deadline = time.monotonic() + within
    while True:
        try:
            with psycopg.connect(wrong, connect_timeout=5):
                pass
        except psycopg.OperationalError as exc:
            if "password authentication failed" in str(exc):
                return
            raise
        if time.monotonic() > deadline:
            pytest.fail(f"a wrong password still got in {within:.0f} s after pg_reload_conf()")
        time.sleep(0.05)


def test_a_wrong_password_says_authentication_failed_and_never_shows_the_password(
    password_role: str, audit_home: Path, run_cli: Run
) -> None:
    wrong = password_role.replace(":right-pw@", ":wr0ng-pw@")
    code, out, err = run_cli(["audit", "verify", "--db", wrong])
    assert (code, out) == (1, "")
    [line] = err.strip().splitlines()
    assert line.startswith("accord: error: cannot connect to the audit database postgresql://")
    assert ": authentication failed for the user: check the password" in line
    assert "wr0ng" not in line


def test_the_error_of_a_url_the_driver_cannot_read_carries_no_driver_text(
    tmp_path: Path,
) -> None:
    """Not even as its ``__cause__`` or ``__context__``, where the driver quotes a bad
    percent-encoded password."""
    with pytest.raises(AuditError, match="cannot connect") as caught:
        open_store("postgresql://u:p%zzs3cretpw@127.0.0.1:1/audit", home=tmp_path)
    assert caught.value.__cause__ is None
    # Nor as its __context__, which ``from None`` only hides: a handler or logger may read it.
    assert caught.value.__context__ is None
    # As a traceback shows it, less this test's own line, which holds the URL.
    shown = "".join(traceback.format_exception(caught.value.with_traceback(None)))
    assert "s3cret" not in shown
    assert "zz" not in shown


def test_a_wrong_port_says_connection_refused(postgres_server: str, audit_home: Path) -> None:
    from broker.devkafka import free_port

    _, port = postgres_server.split("@", 1)[1].split("/", 1)[0].rsplit(":", 1)
    url = postgres_server.replace(f":{port}/", f":{free_port()}/", 1)
    with pytest.raises(AuditError, match="cannot connect") as caught:
        open_store(url, home=audit_home)
    assert ": connection refused: nothing listens at that host and port" in str(caught.value)


def test_a_database_that_is_not_there_is_named_so(postgres_server: str, audit_home: Path) -> None:
    url = postgres_server.rsplit("/", 1)[0] + "/no_such_db_here"
    with pytest.raises(AuditError, match="the database does not exist on that server"):
        open_store(url, home=audit_home)


def test_a_desk_store_that_cannot_be_reached_says_why(postgres_server: str, tmp_path: Path) -> None:
    from broker.desk import open_desk_store

    url = postgres_server.rsplit("/", 1)[0] + "/no_such_db_here"
    with pytest.raises(ConfigError, match="PostgreSQL database: the database does not exist"):
        open_desk_store(url, home=tmp_path, party="school")
