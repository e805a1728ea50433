"""An index URL as libpq reads it: printed without any part of a login, and the same index
only where every parameter that decides which tables are read is the same."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from broker.errors import AccordError, AuditError, UsageError
from broker.governance import describe_url, open_store, same_index, sqlite_file

UNREADABLE = "(an index URL that cannot be parsed)"
HOME = Path("/h")


@pytest.fixture(autouse=True)
def _no_pg_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """libpq fills a parameter a URL leaves out from PG*: the developer's own would change
    what these URLs are compared as."""
    for name in [n for n in os.environ if n.startswith("PG")]:
        monkeypatch.delenv(name)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://accord:Zm9v/YmFy+cXV4@db.internal/audit",  # base64 password with a '/'
        "postgresql://us@er:pw@db.internal/audit",  # an '@' in the user name, unencoded
        "postgresql://accord:1234/YmFy@db.internal/audit",  # a port-like start, then a '/'
        "postgresql://:Zm9v/YmFy@db.internal/audit",  # no user, a password with a '/'
        "postgresql://accord:12/34?sslmode=Zm9v@db.internal/audit",  # a '/' and a '?'
        "postgresql://@db.internal/audit",  # an '@' with no user read
        "postgresql://accord:P@ssword1,@db.internal/audit",  # hosts 'ssword1' and '@db…'
        "postgresql://accord:P@ss@db.internal/audit",  # two '@' before the path
        "postgresql://accord:P@ss,@db.internal?sslmode=require",  # ... or before the query
        # No '/' before the query: libpq's login runs past the '?' to the '@'.
        "postgresql://db?dbname=audit&password=s3cr@t",
        "postgresql://db.example.com?user=accord@myserver&password=S3cretPw",
        "postgresql://db.example.com?application_name=accord@h&password=S3cretPw",
        "postgresql://x:y:@#XQ=(/@@sock/audit?dbname=d",  # an '@' in the path
        # A '[' left open: libpq's IPv6 host runs to the next ']', past the path and query.
        "postgresql://accord@[2001:db8::5/audit?sslmode=require&password=S3cr3t]",
        "postgresql://[fe80::1%25eth0?password=S3cr3t]/audit",
        "postgresql://[127.0.0.1/audit?password=S3cr3t]?connect_timeout=2",
        "postgresql://accord@[db.internal/audit?password=S3cr3t]?hostaddr=127.0.0.1",
        "postgresql://[/run/pg?password=S3cr3t]/audit",  # a socket directory, then a query
        "postgresql://[db.internal/S3cr3t]/audit",  # a '/' in a host not a socket directory's
    ],
)
def test_a_login_libpq_reads_as_host_port_or_database_is_never_printed(url: str) -> None:
    """A '/' or '@' in an unencoded password makes libpq take the user for the host and
    the password for the port and database: the URL is then not described at all, nor
    compared with another (the very same text is the same index, whatever it reaches)."""
    assert describe_url(url) == UNREADABLE
    assert not same_index(url, url.replace("postgresql:", "postgres:"), home=HOME)


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("postgresql://accord:pw@[2001:db8::5]:5433/audit", "postgresql://[2001:db8::5]:5433/audit"),
        ("postgresql://[fe80::1%25eth0]/audit?password=pw", "postgresql://[fe80::1%eth0]/audit"),
        ("postgresql://[::1],[::2]:5433/audit", "postgresql://[::1],[::2]:5433/audit"),
        ("postgresql://%2Frun%2Fpg/audit", "postgresql:///audit?host=/run/pg"),
        ("postgresql://[/run/pg]/audit", "postgresql:///audit?host=/run/pg"),
        # An abstract socket, named as the PostgreSQL docs advise ("@/tmp").
        ("postgresql:///audit?host=@/tmp", "postgresql:///audit?host=%40/tmp"),
        ("postgresql://%40%2Ftmp/audit", "postgresql:///audit?host=%40/tmp"),
        ("postgresql://[db.internal]/audit?hostaddr=10.0.0.7",
         "postgresql://db.internal/audit?hostaddr=10.0.0.7"),
    ],
)  # fmt: skip
def test_a_closed_bracket_an_ipv6_zone_id_and_a_socket_directory_are_still_described(
    url: str, named: str
) -> None:
    """Only a host holding a query or a path is taken for a '[' left open."""
    assert describe_url(url) == named
    assert same_index(url, url.replace("postgresql:", "postgres:"), home=HOME)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://:pw@db/audit",  # a password with no user: read as written
        "postgresql://db/a@udit",  # an '@' in the database name
        "postgresql://db/audit?options=-c%20search_path%3Dx%40y",
        "postgresql://db/audit?sslrootcert=/etc/ca@2/root.pem",
        "host=db.internal dbname=audit",  # libpq key=value, which Accord does not open
    ],
)
def test_the_same_text_is_the_same_index_even_where_it_cannot_be_read(url: str) -> None:
    """Both read in one process with one environment, the same text reaches one place: it
    is the configured index, not a copy, however little of it can be told apart."""
    assert same_index(url, url, home=HOME)
    assert same_index(f" {url}", url, home=HOME)


_TEMPLATES = (
    "postgresql://accord:{pw}@db.internal/audit",
    "postgresql://accord:{pw}@db.internal:5432/audit?sslmode=require",
    "postgresql://accord:{pw}@[::1]/audit",
    "postgresql://accord:{pw}@db1,db2/audit",
    "postgresql://accord:{pw}@/audit?host=/run/pg",
    # A '[' left open: the query, its password too, inside libpq's IPv6 host.
    "postgresql://accord@[fe80::1%25eth0/audit?sslmode=require&password={pw}]",
    "postgresql://[db.internal?password={pw}]?hostaddr=10.0.0.7",
)


# A password as a run of letters and digits between the characters a URL parser splits at:
# the shapes that move libpq's boundaries come up within a few hundred examples.
_PASSWORDS = (
    st.lists(
        st.one_of(
            st.from_regex(r"[A-Za-z0-9]{1,6}", fullmatch=True), st.sampled_from("@/?#:,=&%[]+")
        ),
        min_size=2,
        max_size=7,
    )
    .map("".join)
    .filter(lambda password: len(password) >= 4)
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(template=st.sampled_from(_TEMPLATES), password=_PASSWORDS)
@example(template=_TEMPLATES[0], password="P@ssword1,")  # hosts 'ssword1' and '@db.internal'
@example(template=_TEMPLATES[3], password="Zm9v/YmFy")  # host 'accord', port 'Zm9v'
@example(template=_TEMPLATES[5], password="S3cr3t")  # host 'fe80::1%eth0/audit?…S3cr3t'
def test_no_part_of_a_password_written_unencoded_into_a_url_is_ever_described(
    template: str, password: str
) -> None:
    """Whatever a password holds ('/', '?', '@', ','), no run of four letters or digits
    from it reaches the description, unless the rest of the URL holds that run too."""
    url = template.format(pw=password)
    named = describe_url(url)
    rest = template.replace("{pw}", " ")
    assert password not in named
    for run in re.findall(r"[A-Za-z0-9]{4,}", password):
        assert run in rest or run not in named, (url, named)


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
        "postgresql://ig@db/audit?channel_binding=require&require_auth=scram-sha-256",
        "postgresql://ig@db/audit?sslnegotiation=direct&sslsni=0&sslcertmode=disable",
        "postgresql://ig@db/audit?ssl_min_protocol_version=TLSv1.3&sslcompression=0",
        "postgresql://ig@db/audit?ssl_max_protocol_version=TLSv1.3",
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


@pytest.mark.parametrize(
    "url",
    [
        "host=db.internal dbname=audit user=accord password=S3cretPW",  # libpq key=value
        "  password=S3cretPW host=db.internal",
    ],
)
def test_a_db_that_is_not_a_url_is_refused_without_quoting_it(url: str) -> None:
    """A libpq key=value string holds the password in plain: the one-line refusal says what
    to give instead and quotes nothing of it."""
    with pytest.raises(UsageError) as raised:
        open_store(url, home=HOME, create=False)
    message = str(raised.value)
    assert message.startswith("--db: not a URL (a libpq key=value string?): use sqlite:///PATH")
    for part in ("s3cret", "cretpw", "db.internal", "password"):
        assert part not in message.lower()


def test_an_unsupported_scheme_is_named_and_nothing_after_it() -> None:
    with pytest.raises(UsageError) as raised:
        open_store("mysql://accord:S3cretPW@db/audit", home=HOME, create=False)
    assert str(raised.value) == (
        "--db: unsupported database 'mysql': use sqlite:///PATH or postgresql://HOST/DB"
    )


def test_an_at_and_a_comma_in_a_password_reach_no_error_or_description() -> None:
    """libpq reads ``accord:P@ssword1,@db.internal`` as password 'P' and hosts 'ssword1'
    and '@db.internal': the cannot-connect error names nothing of the URL."""
    url = "postgresql://accord:P@ssword1,@db.internal/audit"
    assert "ssword1" not in describe_url(url)
    with pytest.raises(AccordError) as raised:
        open_store(url, home=HOME, create=False)
    assert "ssword1" not in str(raised.value)


@pytest.mark.parametrize(
    ("url", "written_otherwise"),
    [
        ("postgresql://db.internal/audit", "postgresql://db.internal:5432/audit"),
        ("postgresql://accord@db.internal", "postgresql://accord@db.internal/accord"),
    ],
)
def test_with_a_service_what_a_url_leaves_out_is_not_filled_with_libpqs_defaults(
    url: str, written_otherwise: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service file fills port, user and database before libpq's defaults (5432, the
    login, the user's name) do: with PGSERVICE or ``service``, only URLs that leave out the
    same things are the same index."""
    assert same_index(url, written_otherwise, home=HOME)  # no service: the defaults
    with_service = "&" if "?" in url else "?"
    assert not same_index(
        f"{url}{with_service}service=accord", f"{written_otherwise}?service=accord", home=HOME
    )
    assert same_index(f"{url}?service=accord", f"postgres://{url[13:]}?service=accord", home=HOME)
    monkeypatch.setenv("PGSERVICE", "accord")
    assert not same_index(url, written_otherwise, home=HOME)
    assert same_index(url, url.replace("postgresql:", "postgres:"), home=HOME)


@pytest.mark.parametrize(
    ("url", "other"),
    [
        ("postgresql://db1,db2/audit", "postgresql://db2,db1/audit"),  # tried in order
        ("postgresql:///audit?host=/run/PG", "postgresql:///audit?host=/run/pg"),
        ("postgresql:///audit?host=@Accord", "postgresql:///audit?host=@accord"),
        ("postgresql://[fe80::1%25Eth0]/audit", "postgresql://[fe80::1%25eth0]/audit"),
    ],
)
def test_host_order_socket_paths_and_zone_ids_are_compared_as_written(url: str, other: str) -> None:
    """libpq tries hosts in order, and a socket directory, an abstract socket's name and an
    IPv6 zone id are case-sensitive names: only a DNS name or an address is case-blind."""
    assert not same_index(url, other, home=HOME)


def test_a_dns_name_and_an_ipv6_address_are_compared_in_any_case() -> None:
    assert same_index("postgresql://DB1,Db2/audit", "postgresql://db1,db2/audit", home=HOME)
    assert same_index(
        "postgresql://[FE80::1%25Eth0]/audit", "postgresql://[fe80::1%25Eth0]:5432/audit", home=HOME
    )


@pytest.mark.parametrize(
    "other",
    [
        "postgresql://%40%2Ftmp/audit",
        "postgresql:///audit?host=%40/tmp",
        "postgres://%40%2Ftmp:5432/audit",
    ],
)
def test_an_abstract_socket_written_two_ways_is_the_same_index(other: str) -> None:
    """'@/tmp' (as the PostgreSQL docs advise) in the query or percent-encoded as the host:
    one socket, so one index, not a copy of it."""
    assert same_index("postgresql:///audit?host=@/tmp", other, home=HOME)
    assert same_index(other, "postgresql:///audit?host=@/tmp", home=HOME)


def test_with_a_service_the_environment_does_not_stand_in_for_the_service_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libpq reads the service file before PG* variables: the configured URL reaches the
    service's host, whatever PGHOST says, so a URL naming PGHOST's host is another index."""
    (tmp_path / "svc.conf").write_text("[live]\nhost=livehost\n")
    monkeypatch.setenv("PGSERVICEFILE", str(tmp_path / "svc.conf"))
    monkeypatch.setenv("PGHOST", "copyhost")
    assert not same_index(
        "postgresql:///audit?service=live", "postgresql://copyhost/audit?service=live", home=HOME
    )


@pytest.mark.parametrize("url", ["sqlite:", "sqlite://", "sqlite:///", "sqlite:////"])
def test_an_sqlite_url_naming_no_file_is_refused_as_such(url: str) -> None:
    """``sqlite:///`` names the root folder, never a file: no 'cannot open … at /'."""
    assert sqlite_file(url, home=HOME) is None
    with pytest.raises(UsageError) as raised:
        open_store(url, home=HOME, create=False)
    assert str(raised.value) == "--db: give a file, e.g. sqlite:///var/lib/accord/audit.db"


@pytest.mark.parametrize(
    "url",
    ["accord:s3cret-pw@db.example/audit", "s3cret-pw:x", "s3cret-pw:", "c:\\s3cret-pw"],
)
def test_what_only_looks_like_a_scheme_is_never_quoted(url: str) -> None:
    """The text before a ':' is a scheme worth naming only if it is another database's:
    otherwise it may be a user name or a password (the ``postgresql://`` left out)."""
    with pytest.raises(UsageError) as raised:
        open_store(url, home=HOME, create=False)
    assert str(raised.value) == (
        "--db: not a sqlite: or postgresql: URL: use sqlite:///PATH or postgresql://HOST/DB"
    )
