"""What an index URL names, read as the database reads it: to print it (``describe_url``,
never a password), to find an SQLite file (``sqlite_file``), and to tell whether two URLs
name the same index (``same_index``).

A PostgreSQL URL is read by libpq's own parser (``psycopg.conninfo.conninfo_to_dict``), never
by splitting the text: libpq takes ``?password=s3cr@t`` and ``?port=5433&dbname=other`` from
the query, and ``#`` or ``?`` inside a password, where a URL splitter sees something else.
"""

from __future__ import annotations

import os
import pwd
import re
from pathlib import Path
from urllib.parse import quote

__all__ = [
    "describe_url", "index_url_problem", "not_a_database", "same_index", "sqlite_file",
    "url_scheme",
]  # fmt: skip

_POSTGRES = ("postgresql", "postgres")
UNREADABLE = "(an index URL that cannot be parsed)"
GIVE_A_FILE = "give a file, e.g. sqlite:///var/lib/accord/audit.db"


_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_PORT = re.compile(r"[0-9]+")


def url_scheme(url: str) -> str:
    """A URL's scheme, lower case; '' for a string that is not a URL (``host=… password=…``
    is a libpq key/value string, and printed whole would show the password)."""
    match = _SCHEME.match(url.strip())
    return match.group(1).lower() if match else ""


# Other databases' URL schemes, named when given: a scheme not among them is never quoted.
_OTHER_DATABASES = frozenset({
    "mysql", "mariadb", "oracle", "sqlserver", "mssql", "mongodb", "mongodb+srv", "redis",
    "rediss", "cockroachdb", "db2", "sybase", "firebird", "cassandra", "clickhouse",
    "snowflake", "duckdb", "sqlite3", "jdbc", "odbc",
})  # fmt: skip


def not_a_database(url: str) -> str:
    """Why ``url`` names no database Accord opens, safe to print: another database's scheme
    at most, never the rest (a libpq ``key=value`` string given for a URL holds the password
    in plain), nor what only looks like a scheme (``accord:s3cret@db/audit``, a login with
    the ``postgresql://`` left out, would show the user; ``s3cret:…`` the password)."""
    scheme = url_scheme(url)
    use = "use sqlite:///PATH or postgresql://HOST/DB"
    if not scheme:
        return f"not a URL (a libpq key=value string?): {use}"
    if scheme in _OTHER_DATABASES:
        return f"unsupported database {scheme!r}: {use}"
    return f"not a sqlite: or postgresql: URL: {use}"


def index_url_problem(url: str, *, home: Path) -> str | None:
    """Why ``url`` reaches no index, as the open finds before it connects, safe to print
    (nothing of the text): an SQLite URL naming no file, a PostgreSQL URL libpq cannot read
    or would misread, or no such URL at all; None if it names one."""
    scheme = url_scheme(url)
    if scheme == "sqlite":
        return None if sqlite_file(url, home=home) is not None else GIVE_A_FILE
    if scheme in _POSTGRES:
        if describe_url(url) != UNREADABLE:
            return None
        return "an index URL that cannot be parsed: use postgresql://HOST/DB"
    return not_a_database(url)


def _libpq(url: str) -> dict[str, str] | None:
    """The URL as libpq reads it, or None if it cannot (its error may quote the URL, and
    with it a password: not passed on)."""
    try:
        from psycopg import Error  # noqa: PLC0415  # only deployments on PostgreSQL load it
        from psycopg.conninfo import conninfo_to_dict  # noqa: PLC0415
    except ImportError:
        return None
    try:
        parsed = conninfo_to_dict(url)
    except (Error, ValueError):
        return None
    return {k: str(v) for k, v in parsed.items() if v is not None}


def _misread(url: str, params: dict[str, str]) -> bool:
    """Whether libpq read part of a login as the address: never shown, never compared. A
    password with a '/' (base64 makes them) ends libpq's authority there, so
    ``accord:Zm9v/YmFy@db/audit`` gives host ``accord``, port ``Zm9v`` and database
    ``YmFy@db/audit``; one with an '@' (``us@er:pw@db``) gives host ``er``, port ``pw@db``.
    A password with an '@' and a ',' (``accord:P@ss1,@db``) gives user ``accord``, password
    ``P`` and hosts ``ss1`` and ``@db``, an abstract socket's name. So: a port that is not a
    number; an '@' anywhere but in the user, the password or at the start of a host (an
    abstract socket's); an '@' before the query with no user read; an '@' among the hosts
    that follow the login (an abstract socket there is written ``%40``; ``?host=@sock``
    stays readable). A '[' left open (``[::1/audit?password=s3cret]``) makes the rest, up to
    the next ']', an IPv6 host: a host with a '?', '&', '=', or a '/' not a socket
    directory's or an abstract socket's ('@/tmp'), is misread too."""
    return _misread_params(params) or _misread_text(url, params)


def _misread_params(params: dict[str, str]) -> bool:
    """A port that is not a number, an '@' where libpq's reading puts none on purpose, or a
    host holding what libpq ends a host at but inside '[…]' (a database or a query)."""
    if not all(_PORT.fullmatch(p) or not p for p in params.get("port", "").split(",")):
        return True
    hosts = params.get("host", "").split(",")
    if any("@" in h[1:] for h in hosts):
        return True
    # libpq reads an IPv6 host from '[' to the next ']', past any '/' and '?': a '[' left
    # open takes the database and the query, a password in it too, for the host. No host
    # holds a '?', '&' or '=', nor a '/' unless it is a socket directory's or an abstract
    # socket's written as a path ('@/tmp', as PostgreSQL's docs advise).
    if any(set(h) & set("?&=") or ("/" in h and not h.startswith(("/", "@/"))) for h in hosts):
        return True
    return any("@" in v for k, v in params.items() if k not in ("user", "password", "host"))


def _misread_text(url: str, params: dict[str, str]) -> bool:
    """An '@' in the text where libpq's login and host rules make a login the address."""
    rest = url.partition("//")[2]
    # libpq looks for a login's '@' up to the first '/', past any '?': one after a '?'
    # makes the query (a password in it too) the login, and what follows the hosts.
    login = rest.partition("/")[0]
    if "@" in login and "=" in login.partition("@")[0].partition("?")[2]:
        return True
    # An '@' in the path is a login's, whatever a query's dbname= then puts in its place.
    after = rest.partition("@")[2] if "@" in login else rest
    if "@" in after.partition("?")[0].partition("/")[2]:
        return True
    if "@" in rest.partition("?")[0] and not params.get("user"):
        return True
    # libpq ends a login at the first '@' before the first '/', past any '?'; the hosts
    # then run to a '?' or '/'. An '@' among them is a second one from the login.
    return "@" in login.partition("@")[2].partition("?")[0]


def _host_ports(params: dict[str, str]) -> list[tuple[str, str]] | None:
    """Each host with its port ('' for the default), as libpq pairs them: one port for
    every host, or one each. None if the counts do not match (libpq would refuse it)."""
    hosts = params["host"].split(",") if params.get("host") else []
    ports = params["port"].split(",") if params.get("port") else []
    if not hosts:
        hosts = [""]
    if len(ports) <= 1:
        ports = (ports or [""]) * len(hosts)
    if len(ports) != len(hosts):
        return None
    return list(zip(hosts, ports, strict=True))


def describe_url(url: str) -> str:
    """An index URL safe to print and to keep in a signed record. PostgreSQL: only the
    hosts, ports, database, and service or host address if given, as libpq reads them
    (never the user, the password or any other parameter); one libpq cannot read is
    ``(an index URL that cannot be parsed)``. SQLite: the URL as it is (a file name holds no
    credentials). Anything else: its scheme alone."""
    url = url.strip()
    scheme = url_scheme(url)
    if scheme == "sqlite":
        return url
    if scheme not in _POSTGRES:
        return f"{scheme}:" if scheme else UNREADABLE
    params = _libpq(url)
    if params is None or _misread(url, params):
        return UNREADABLE
    query = {k: params[k] for k in ("service", "hostaddr") if params.get(k)}
    pairs = _host_ports(params)
    netloc = ""
    if pairs is not None and not any(h.startswith(("/", "@")) for h, _ in pairs):
        netloc = ",".join(
            (f"[{h}]" if ":" in h else quote(h, safe="")) + (f":{quote(p, safe='')}" if p else "")
            for h, p in pairs
        )
    else:  # a socket directory, or hosts and ports that do not pair: as parameters
        query = {k: params[k] for k in ("host", "port") if params.get(k)} | query
    dbname = f"/{quote(params['dbname'], safe='')}" if params.get("dbname") else ""
    tail = "&".join(f"{k}={quote(v, safe='/,:')}" for k, v in query.items())
    return f"postgresql://{netloc}{dbname}" + (f"?{tail}" if tail else "")


def sqlite_file(url: str | None, *, home: Path) -> Path | None:
    """The file an SQLite index URL names, as ``open_store`` opens it (None or blank:
    ``<home>/audit.db``); None for another database, or ``sqlite:`` naming no file. Nothing
    is opened: opening may change it."""
    if url is None or not url.strip():
        return home / "audit.db"
    url = url.strip()
    if url_scheme(url) != "sqlite":
        return None
    path = url[len("sqlite:") :]
    path = path[2:] if path.startswith("//") else path  # sqlite:///abs or sqlite:rel
    path = "/" + path.lstrip("/") if path.startswith("/") else path  # sqlite:////abs too
    return Path(path) if path.strip("/") else None  # sqlite:/// names a folder, no file


# Parameters that decide how, or whether, a connection is made, never which tables it reads:
# the password, TLS and authentication settings (the server is the host's either way; a
# client certificate still logs in as ``user``), time-outs, keep-alives and the name shown
# in pg_stat_activity.
# Every other one is compared as written: ``options`` (``-c search_path=evidence``) and
# ``user`` choose which schema the audit SQL's unqualified table names mean, and a parameter
# not weighed here (``target_session_attrs``, ``gssencmode``, one a later libpq adds) is
# taken to matter: a URL that looks different is a copy, opened read-only.
_INERT = frozenset({
    "password", "passfile", "sslmode", "sslrootcert", "sslcert", "sslkey", "sslpassword",
    "sslcrl", "sslcrldir", "connect_timeout", "application_name", "fallback_application_name",
    "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
    "tcp_user_timeout", "sslnegotiation", "sslsni", "sslcertmode", "ssl_min_protocol_version",
    "ssl_max_protocol_version", "sslcompression", "channel_binding", "require_auth",
})  # fmt: skip
# What libpq takes from the environment for a parameter the URL leaves out (both URLs are
# read in this process, so with the same environment).
_ENVIRONMENT = {
    "host": "PGHOST", "hostaddr": "PGHOSTADDR", "port": "PGPORT", "dbname": "PGDATABASE",
    "user": "PGUSER", "options": "PGOPTIONS", "service": "PGSERVICE",
}  # fmt: skip


def _login_name() -> str:
    """The operating-system user libpq logs in as when neither the URL nor PGUSER names one."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except (KeyError, OSError):
        return ""  # compared as written: a URL naming a user is then another login's


def _host_key(host: str) -> str:
    """A host as compared: a DNS name or an IP address in lower case (its case means
    nothing); a socket directory (``/run/pg``), an abstract socket (``@pg``) and an IPv6
    zone id (``%eth0``) as written, their case being part of a name."""
    if host.startswith(("/", "@")):
        return host
    address, percent, zone = host.partition("%")
    return address.lower() + percent + zone


def _identity(url: str | None, home: Path) -> tuple[object, ...] | None:
    """What decides which index a URL reaches, and which tables there; None if it cannot
    be told."""
    path = sqlite_file(url, home=home)
    if path is not None:
        try:
            return ("sqlite", str(path.resolve()))
        except (OSError, RuntimeError):  # a symlink loop (RuntimeError on 3.11): not told
            return None
    if url is None or url_scheme(url.strip()) not in _POSTGRES:
        return None
    params = _libpq(url.strip())
    if params is None or _misread(url.strip(), params):
        return None
    # libpq reads a service file (the URL's or PGSERVICE's) before the environment and its
    # defaults: with a service, a parameter left out is the file's, so nothing is filled
    # here and only URLs that leave out the same things match.
    service = params.get("service") or os.environ.get("PGSERVICE", "")
    given = params | ({"service": service} if service else {})
    if not service:
        given |= {k: os.environ[env] for k, env in _ENVIRONMENT.items()
                  if k not in params and env in os.environ}  # fmt: skip
    pairs = _host_ports(given)
    if pairs is None:
        return None
    # In order: libpq tries the hosts one after another, and reaches the first that answers.
    servers = tuple((_host_key(h), p or ("" if service else "5432")) for h, p in pairs)
    user = given.get("user") or ("" if service else _login_name())
    # libpq's default database is the user's name; compared, never printed.
    dbname = given.get("dbname") or ("" if service else user)
    others = tuple(sorted((k, v) for k, v in given.items() if k not in _INERT))
    known = ("host", "port", "user", "dbname")
    return ("postgresql", servers, user, dbname, tuple(kv for kv in others if kv[0] not in known))


def same_index(url: str | None, other: str | None, *, home: Path) -> bool:
    """Whether two index URLs (None: ``<home>/audit.db``) reach the same index, however
    written: an SQLite file by its resolved path; a PostgreSQL database by what libpq reads
    (``postgres://`` or ``postgresql://``, host names in any case but in the same order, port
    5432 unless given, the database, the user it logs in as and its ``options``, which choose
    the schema the audit's tables are read from, and every other parameter but the password,
    TLS and authentication settings, time-outs and application name, wherever in the URL
    each is given, and what the environment gives for one left out; with a service, one left
    out is compared as left out, the service file filling it). The same text is the same
    index, even one that cannot be read; otherwise False if either cannot be read: a run
    taken for a copy's vouches for nothing."""
    if (url or "").strip() == (other or "").strip():
        return True  # read in one process, with one environment: libpq reaches one place
    mine = _identity(url, home)
    return mine is not None and mine == _identity(other, home)
