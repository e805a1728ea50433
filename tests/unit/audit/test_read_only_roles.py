"""A database role that may only read the index opens it, and the commands say in one line
what it could not write (PostgreSQL 15 gives public no CREATE; some roles read only)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from broker.errors import AuditError
from broker.governance import open_store
from broker.keys import FileKeyStore
from broker.linkage import Linker
from tests.unit.audit.conftest import Run, index_records, worker_chain


@pytest.fixture
def pg_url(postgres_server: str) -> Iterator[str]:
    from tests.postgres import fresh_database

    yield from fresh_database(postgres_server)


@pytest.fixture
def indexed_pg(pg_url: str, audit_home: Path, keys: FileKeyStore, linker: Linker) -> int:
    """An index kept by the owning role; how many records it holds."""
    from broker.audit import KeystoreAuditVerifier

    store = open_store(pg_url, home=audit_home)
    try:
        records = worker_chain(linker, keys)
        assert index_records(store, KeystoreAuditVerifier(keys), records).breaks == []
    finally:
        store.close()
    return len(records)


def _role(pg_url: str, *grants: str) -> Iterator[str]:
    """A login role given ``grants`` (``{role}`` stands for its name); its URL."""
    name = f"ro_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN")
        for grant in grants:
            conn.execute(grant.format(role=name))
    try:
        yield pg_url.replace("//accord@", f"//{name}@", 1)
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {name}")
            conn.execute(f"DROP ROLE {name}")


@pytest.fixture
def select_only(pg_url: str, indexed_pg: int) -> Iterator[str]:
    """SELECT on every table, nothing else: no INSERT, no CREATE on public (PostgreSQL 15)."""
    yield from _role(pg_url, "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")


@pytest.fixture
def read_only_by_default(pg_url: str, indexed_pg: int) -> Iterator[str]:
    """Every privilege, but each transaction read-only unless it asks otherwise."""
    yield from _role(
        pg_url,
        "GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}",
        "GRANT CREATE ON SCHEMA public TO {role}",
        "ALTER ROLE {role} SET default_transaction_read_only = on",
    )


@pytest.mark.parametrize("role", ["select_only", "read_only_by_default"])
def test_a_role_that_may_only_read_verifies_and_says_in_one_line_the_result_was_not_kept(
    role: str, request: pytest.FixtureRequest, indexed_pg: int, run_cli: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    url = request.getfixturevalue(role)
    monkeypatch.setenv("ACCORD_AUDIT_DB", url)  # the configured index, not a copy
    code, out, err = run_cli(["audit", "verify", "--db", url])
    assert code == 0
    assert out.startswith(f"audit log intact (postgresql): {indexed_pg} records in 1 chain")
    assert len(out.strip().splitlines()) == 1  # no log line among the answer
    [line] = err.strip().splitlines()
    assert line.startswith(
        "accord: warning: result not kept in the index: the database refused it ("
    )


def test_a_failure_found_by_a_role_that_may_only_read_still_exits_1(
    select_only: str, pg_url: str, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCORD_AUDIT_DB", select_only)  # the configured index, not a copy
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE audit_records SET body = REPLACE(body, 'early_help', 'early_hulp') "
                     "WHERE chain = 'worker:w1' AND seq = 2")  # fmt: skip
    code, out, err = run_cli(["audit", "verify", "--db", select_only])
    assert (code, out) == (1, "")
    lines = err.strip().splitlines()
    assert lines[0].startswith("accord: warning: result not kept in the index: ")
    assert lines[1:] == [
        "accord: error: audit chain 'worker:w1' broken at seq 2: record content does not match "
        "its hash"
    ]


def test_an_index_behind_this_accords_schema_is_one_line_for_a_role_that_cannot_migrate_it(
    select_only: str, pg_url: str, audit_home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The configured index: a copy's is never migrated (test_evidence_copy).
    monkeypatch.setenv("ACCORD_AUDIT_DB", select_only)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DELETE FROM schema_version WHERE version >= 6")
        conn.execute("DROP TABLE verify_runs")
        conn.execute("DROP INDEX audit_records_position")
    with pytest.raises(AuditError, match="at schema version 5 and this Accord needs 7"):
        open_store(select_only, home=audit_home)
    code, out, err = run_cli(["audit", "verify", "--db", select_only])
    assert (code, out) == (1, "")
    [line] = err.strip().splitlines()
    assert line.startswith("accord: error: the audit index at postgresql://127.0.0.1:")
    assert line.endswith(
        "could not be brought up to date (InsufficientPrivilege): run 'accord audit index' once "
        "as a database role that may create tables"
    )
