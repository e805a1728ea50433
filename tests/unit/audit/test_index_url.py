"""An index URL as libpq reads it: printed without any part of a login, and the same index
only where every parameter that decides which tables are read is the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.errors import AuditError
from broker.governance import describe_url, open_store, same_index

UNREADABLE = "(an index URL that cannot be parsed)"
HOME = Path("/h")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://accord:Zm9v/YmFy+cXV4@db.internal/audit",  # base64 password with a '/'
        "postgresql://us@er:pw@db.internal/audit",  # an '@' in the user name, unencoded
        "postgresql://accord:1234/YmFy@db.internal/audit",  # a port-like start, then a '/'
        "postgresql://:Zm9v/YmFy@db.internal/audit",  # no user, a password with a '/'
        "postgresql://accord:12/34?sslmode=Zm9v@db.internal/audit",  # a '/' and a '?'
        "postgresql://@db.internal/audit",  # an '@' with no user read
    ],
)
def test_a_login_libpq_reads_as_host_port_or_database_is_never_printed(url: str) -> None:
    """A '/' or '@' in an unencoded password makes libpq take the user for the host and
    the password for the port and database: the URL is then not described at all."""
    assert describe_url(url) == UNREADABLE
    assert not same_index(url, url, home=HOME)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://accord:Zm9v/YmFy+cXV4@db.internal/audit",
        "postgresql://us@er:pw@db.internal/audit",
    ],
)
def test_the_cannot_connect_error_names_no_part_of_the_password(url: str) -> None:
    """libpq refuses the password-as-port before any look-up; the one-line error that
    reaches stderr and the logs quotes the description only."""
    with pytest.raises(AuditError) as raised:
        open_store(url, home=HOME, create=False)
    for secret in ("Zm9v", "YmFy", "cXV4", "pw", "accord", "us@", "er:"):
        assert secret not in str(raised.value)


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("postgresql:///audit?host=@accord", "postgresql:///audit?host=%40accord"),
        ("postgresql://accord@db/audit?password=s3cr@t&port=5433", "postgresql://db:5433/audit"),
        ("postgresql://db/audit?user=ig@tenant", "postgresql://db/audit"),
    ],
)
def test_an_at_sign_where_libpq_expects_one_still_leaves_the_url_readable(
    url: str, named: str
) -> None:
    """An abstract socket's leading '@', and an '@' in the password or user, are not a
    misread login."""
    assert describe_url(url) == named
    assert same_index(url, url, home=HOME)


@pytest.mark.parametrize(
    ("configured", "db"),
    [
        ("postgresql://db/audit", "postgresql://db/audit?options=-c%20search_path%3Devidence"),
        ("postgresql://db/audit?options=-csearch_path%3Daudit",
         "postgresql://db/audit?options=-csearch_path%3Devidence"),
        ("postgresql://indexer@db/audit", "postgresql://ig@db/audit"),
        ("postgresql://indexer@db/audit", "postgresql://db/audit"),
        ("postgresql://db/audit", "postgresql://db/audit?target_session_attrs=standby"),
        ("postgresql://db/audit", "postgresql://db/audit?gssencmode=disable"),
    ],
)  # fmt: skip
def test_another_schema_another_login_or_an_unweighed_parameter_is_a_copy(
    configured: str, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The audit SQL names its tables unqualified, so ``options`` (search_path) and the user
    (``$user`` in the default search_path) choose the tables read; a parameter not known to
    leave them alone is taken to matter too (fail closed: a copy is opened read-only)."""
    monkeypatch.delenv("PGUSER", raising=False)
    monkeypatch.delenv("PGOPTIONS", raising=False)
    assert not same_index(configured, db, home=HOME)
    assert not same_index(db, configured, home=HOME)


@pytest.mark.parametrize(
    "db",
    [
        "postgresql://ig:other@db/audit",
        "postgresql://ig@db/audit?sslmode=verify-full&sslrootcert=/etc/ca.pem",
        "postgresql://ig@db:5432/audit?connect_timeout=5&application_name=accord-cli",
        "postgresql://ig@db/audit?keepalives=1&password=x",
    ],
)
def test_a_password_tls_timeout_or_application_name_is_still_the_configured_index(
    db: str,
) -> None:
    """Those decide how, or whether, the connection is made, never which tables it reads."""
    assert same_index("postgresql://ig:s3cret@db/audit", db, home=HOME)


def test_a_parameter_left_out_is_what_libpq_takes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The user, database, port and options PGUSER, PGDATABASE, PGPORT and PGOPTIONS give."""
    monkeypatch.setenv("PGUSER", "ig")
    monkeypatch.delenv("PGDATABASE", raising=False)
    assert same_index("postgresql://ig@db", "postgresql://db/ig", home=HOME)
    monkeypatch.setenv("PGUSER", "indexer")
    assert not same_index("postgresql://ig@db/audit", "postgresql://db/audit", home=HOME)
    monkeypatch.setenv("PGOPTIONS", "-c search_path=evidence")
    assert not same_index(
        "postgresql://db/audit?options=-c%20search_path%3Daudit", "postgresql://db/audit", home=HOME
    )
    monkeypatch.setenv("PGPORT", "5433")
    assert not same_index("postgresql://db:5432/audit", "postgresql://db/audit", home=HOME)
    monkeypatch.setenv("PGDATABASE", "evidence")
    assert not same_index("postgresql://db:5433/audit", "postgresql://db:5433", home=HOME)
