"""A copy of the audit index (evidence, say) is read as it is by `accord audit report|subject|
verify --db COPY`: never caught up from the topic, migrated, tightened or given a verify_runs
row (docs/governance.md, "do not re-index over the evidence"), and refused by `accord audit
review-override`; the configured index still is caught up."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from broker.audit import AuditRecord
from broker.errors import AuditError
from broker.governance import AuditStore, VerifyRun, open_store
from tests.unit.audit.conftest import CHILD_NHS, RecordingSink, Run
from tests.unit.audit.test_sar_state_warning import is_the_document

SUBJECT = ["audit", "subject", "--nhs-number", CHILD_NHS, "--reason", "complaint"]
REPORT = ["audit", "report", "--format", "json", "--reason", "oversight"]


@pytest.fixture
def copy_db(indexed: list[AuditRecord], audit_db_url: str, tmp_path: Path) -> Path:
    """A copy of the indexed (configured) index, left readable by others as a copy may be."""
    assert audit_db_url.startswith("sqlite:"), "a file's bytes: its tests run on SQLite only"
    source = sqlite3.connect(audit_db_url.removeprefix("sqlite:///"))
    target = sqlite3.connect(tmp_path / "copy.db")
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    path = tmp_path / "copy.db"
    path.chmod(0o644)
    return path


@pytest.fixture
def catch_ups(monkeypatch: pytest.MonkeyPatch) -> list[AuditStore]:
    """The indexes the look-up commands catch up from the topic (Kafka faked), with sign-in
    and the look-up's record faked too."""
    import broker.cli._audit
    import broker.cli._audit_review

    caught: list[AuditStore] = []
    sink = RecordingSink()
    for module in (broker.cli._audit, broker.cli._audit_review):  # review-override's is its own
        monkeypatch.setattr(module, "sign_in", lambda _s, name, **_kw: name)
        monkeypatch.setattr(module, "_appender", lambda *_a: sink)
        monkeypatch.setattr(module, "_index_once", lambda _s, store: caught.append(store))
    return caught


# The tests of a copy's file run on SQLite only: PostgreSQL keeps no file to compare.
_SQLITE = pytest.mark.parametrize("audit_db_url", ["sqlite"], indirect=True)


def _state(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mode & 0o777


@_SQLITE
@pytest.mark.parametrize(
    "argv",
    [[*SUBJECT, "--as", "ig.jo"], [*REPORT, "--as", "ig.jo"], ["audit", "verify"]],
    ids=["subject", "report", "verify"],
)
def test_a_copys_bytes_and_mode_are_unchanged_by_report_subject_and_verify(
    argv: list[str], copy_db: Path, catch_ups: list[AuditStore], run_cli: Run,
) -> None:  # fmt: skip
    before = _state(copy_db)
    code, out, err = run_cli([*argv, "--db", f"sqlite:///{copy_db}"])
    assert code == 0, err
    assert catch_ups == []  # never caught up from the topic
    assert "audit_index_made_private" not in out + err
    assert _state(copy_db) == before
    with sqlite3.connect(f"file:{copy_db}?mode=ro", uri=True) as conn:
        assert conn.execute("SELECT COUNT(*) FROM verify_runs").fetchone() == (0,)


@pytest.mark.parametrize("argv", [SUBJECT, REPORT], ids=["subject", "report"])
def test_the_configured_index_is_still_caught_up_from_the_topic(
    argv: list[str], indexed: list[AuditRecord], audit_db_url: str,
    catch_ups: list[AuditStore], run_cli: Run,
) -> None:  # fmt: skip
    code, _, err = run_cli([*argv, "--db", audit_db_url, "--as", "ig.jo"])
    assert code == 0, err
    assert catch_ups  # the look-up's own record, and (report) what is new, indexed at once


def test_verifying_the_configured_index_still_keeps_its_result(
    indexed: list[AuditRecord], audit_db_url: str, store: AuditStore, run_cli: Run,
) -> None:  # fmt: skip
    code, _, err = run_cli(["audit", "verify", "--db", audit_db_url])
    assert code == 0, err
    assert store.last_verification() is not None


@_SQLITE
def test_a_copy_of_an_older_schema_is_refused_in_one_line_never_migrated(
    copy_db: Path, catch_ups: list[AuditStore], run_cli: Run,
) -> None:  # fmt: skip
    with sqlite3.connect(copy_db) as conn:
        conn.execute("DELETE FROM schema_version WHERE version = "
                     "(SELECT MAX(version) FROM schema_version)")  # fmt: skip
    conn.close()
    before = _state(copy_db)
    code, out, err = run_cli(["audit", "verify", "--db", f"sqlite:///{copy_db}"])
    assert (code, out) == (1, "")
    assert err.count("\n") == 1
    assert "opened read-only and never migrated" in err
    assert f"'accord audit index --db sqlite://{copy_db.resolve()}'" in err
    assert _state(copy_db) == before


def test_an_index_opened_read_only_refuses_every_write(
    indexed: list[AuditRecord], audit_db_url: str, audit_home: Path
) -> None:
    """On PostgreSQL too: the session's transactions are read-only."""
    copy = open_store(audit_db_url, home=audit_home, create=False, read_only=True)
    try:
        with pytest.raises(AuditError):
            copy.keep_verification(VerifyRun(datetime.now(UTC), "ig.jo", "cli", ok=True))
        assert copy.last_verification() is None
        assert copy.count() == len(indexed)
    finally:
        copy.close()


@_SQLITE
@pytest.mark.parametrize("argv", [SUBJECT, REPORT], ids=["subject", "report"])
def test_a_copys_look_up_record_goes_on_from_the_live_indexs_chain_head(
    argv: list[str], copy_db: Path, audit_db_url: str, catch_ups: list[AuditStore],
    run_cli: Run, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Never from the copy's head: an older copy's would fork the command line's chain in the
    live log."""
    import broker.cli._audit

    heads_from: list[object] = []
    sink = RecordingSink()

    def appender(_settings: object, _keys: object, index: AuditStore, _host: object) -> object:
        heads_from.append(getattr(index, "path", None))
        return sink

    monkeypatch.setattr(broker.cli._audit, "_appender", appender)
    code, _, err = run_cli([*argv, "--as", "ig.jo", "--db", f"sqlite:///{copy_db}"])
    assert code == 0, err
    assert heads_from == [Path(audit_db_url.removeprefix("sqlite:///"))]
    assert sink.records  # the look-up is recorded


@_SQLITE
@pytest.mark.parametrize("argv", [SUBJECT, REPORT], ids=["subject", "report"])
def test_a_copy_is_not_shown_where_the_configured_index_cannot_be_opened(
    argv: list[str], copy_db: Path, catch_ups: list[AuditStore], run_cli: Run,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:  # fmt: skip
    monkeypatch.setenv("ACCORD_AUDIT_DB", f"sqlite:///{tmp_path / 'nowhere.db'}")
    code, out, err = run_cli([*argv, "--as", "ig.jo", "--db", f"sqlite:///{copy_db}"])
    assert (code, out) == (1, "")
    assert err.count("\n") == 1
    assert "ACCORD_AUDIT_DB" in err
    assert "nothing is shown" in err


@_SQLITE
def test_a_sar_from_a_copy_says_the_copy_was_verified_now_and_what_was_found(
    copy_db: Path, indexed: list[AuditRecord], catch_ups: list[AuditStore], run_cli: Run,
) -> None:  # fmt: skip
    """Not "run 'accord audit verify' before sending": a copy keeps no verification, so the
    instruction could never be met."""
    argv = [*SUBJECT, "--as", "ig.jo", "--format", "html", "--db", f"sqlite:///{copy_db}"]
    code, out, err = run_cli(argv)
    assert code == 0, err
    assert f"Audit log: this copy, verified now: intact, {len(indexed)} records in " in out
    assert "run &#x27;accord audit verify&#x27; before sending" not in out
    with sqlite3.connect(copy_db) as conn:
        conn.execute("UPDATE audit_records SET body = REPLACE(body, 'early_help', 'early_hulp') "
                     "WHERE chain = 'worker:w1' AND seq = 2")  # fmt: skip
    conn.close()
    code, out, err = run_cli(argv)
    assert code == 0, err
    assert "Audit log: this copy, verified now: BROKEN: audit chain &#x27;worker:w1&#x27; " in out


@_SQLITE
@pytest.mark.parametrize("fmt", ["json", "table"])
def test_a_report_from_a_copy_says_it_shows_the_copy_as_it_was(
    fmt: str, copy_db: Path, audit_db_url: str, catch_ups: list[AuditStore], run_cli: Run,
) -> None:  # fmt: skip
    """Not caught up from the topic, so it may lack what was logged since: the output says so;
    the configured index's says it is caught up."""
    import json

    argv = ["audit", "report", "--format", fmt, "--reason", "oversight", "--as", "ig.jo"]
    code, out, err = run_cli([*argv, "--db", f"sqlite:///{copy_db}"])
    assert code == 0, err
    code, live, err = run_cli([*argv, "--db", audit_db_url])
    assert code == 0, err
    if fmt == "json":
        assert (json.loads(out)["index_role"], json.loads(out)["caught_up"]) == ("copy", False)
        assert (json.loads(live)["index_role"], json.loads(live)["caught_up"]) == (
            "configured",
            True,
        )
    else:
        assert "made from a copy of the audit index (--db), shown as it was: not caught up" in out
        assert "copy" not in live


@_SQLITE
def test_a_review_on_a_copy_is_refused_in_one_line_and_the_copy_left_as_it_was(
    copy_db: Path, catch_ups: list[AuditStore], run_cli: Run, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A review is recorded in the live log against the live index's override and chain
    head: a copy's would fork the command line's chain, and opening it to write changes it."""
    import broker.cli._audit_review

    sink = RecordingSink()
    monkeypatch.setattr(broker.cli._audit_review, "_appender", lambda *_a: sink)
    before = _state(copy_db)
    # No --as: the copy is refused before the account is asked for (without a terminal,
    # asking would end in "missing --as" instead).
    argv = ["audit", "review-override", "e2", "--recipient", "school-1", "--finding",
            "justified", "--db", f"sqlite:///{copy_db}"]  # fmt: skip
    code, out, err = run_cli(argv)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert "a review is recorded against the live audit index, and --db names another" in err
    assert "(another file)" in err  # a SQLite copy: no libpq in how it was told apart
    assert "drop --db" in err
    assert "audit_index_made_private" not in err
    assert sink.records == []  # no review written
    assert catch_ups == []  # the copy never caught up from the topic
    assert _state(copy_db) == before


@pytest.mark.parametrize(
    ("db", "says"),
    [
        ("/var/lib/evidence/audit.db", "--db: not a URL"),
        ("host=db.example dbname=audit user=accord password=s3cret-pw", "--db: not a URL"),
        ("mysql://accord:s3cret-pw@db.example/audit", "--db: unsupported database 'mysql'"),
        ("accord:s3cret-pw@db.example/audit", "--db: not a sqlite: or postgresql: URL"),
        ("sqlite:", "--db: give a file, e.g. sqlite:///"),
        ("sqlite://", "--db: give a file, e.g. sqlite:///"),
        ("sqlite:///", "--db: give a file, e.g. sqlite:///"),
        ("postgresql:", "--db: an index URL that cannot be parsed"),
        ("postgresql://a:s3cret-pw@[db.example/x", "--db: an index URL that cannot be parsed"),
    ],
    ids=[
        "bare_path",
        "libpq_key_value",
        "other_scheme",
        "login_as_scheme",
        "sqlite_colon",
        "sqlite_slashes",
        "sqlite_root",
        "postgresql_colon",
        "bracket_left_open",
    ],
)
def test_a_review_with_a_db_that_is_no_index_url_is_refused_as_such_never_echoing_it(
    db: str, says: str, catch_ups: list[AuditStore], run_cli: Run
) -> None:
    """Nothing was compared (neither as files nor as libpq reads it): the refusal says the
    value names no database, as the open would, in one line, before --as is asked for, and
    never prints it (a key=value string holds the password in plain)."""
    argv = ["audit", "review-override", "e2", "--recipient", "school-1", "--finding",
            "justified", "--db", db]  # fmt: skip
    code, out, err = run_cli(argv)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert says in err
    assert "names another" not in err
    assert "libpq reads it" not in err
    assert "s3cret-pw" not in err
    assert "evidence" not in err
    assert "db.example" not in err
    assert "'accord'" not in err  # a user name before the ':', not a scheme to name
    assert catch_ups == []


def test_a_review_with_a_db_naming_another_postgresql_index_says_how_it_was_compared(
    catch_ups: list[AuditStore], run_cli: Run
) -> None:
    argv = ["audit", "review-override", "e2", "--recipient", "school-1", "--finding",
            "justified", "--db", "postgresql://accord:s3cret-pw@db.example/audit"]  # fmt: skip
    code, out, err = run_cli(argv)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert "--db names another (compared as libpq reads it: hosts, ports" in err
    assert "s3cret-pw" not in err
    assert catch_ups == []


@pytest.mark.parametrize(
    "argv",
    [[*SUBJECT, "--as", "ig.jo"], [*REPORT, "--as", "ig.jo"], ["audit", "verify"]],
    ids=["subject", "report", "verify"],
)
def test_a_db_through_a_symlink_loop_is_no_index_in_one_line(
    argv: list[str], indexed: list[AuditRecord], catch_ups: list[AuditStore], run_cli: Run,
    tmp_path: Path,
) -> None:  # fmt: skip
    """Resolving a loop raises (RuntimeError on Python 3.11): the name is told apart from the
    configured index as a copy's would be, and the open says there is no index there."""
    (tmp_path / "loop1.db").symlink_to("loop2.db")
    (tmp_path / "loop2.db").symlink_to("loop1.db")
    code, out, err = run_cli([*argv, "--db", f"sqlite:///{tmp_path / 'loop1.db'}"])
    assert (code, out) == (1, "")
    assert err.count("\n") == 1, err
    assert f"no audit index at {tmp_path / 'loop1.db'}" in err
    assert "Traceback" not in err
    assert catch_ups == []


# A SAR answer in table, CSV or JSON says on stderr, in one line outside the data, what the
# html page's header says of a copy, and exits 1 when verifying the copy now finds it broken.
_FORMATS = pytest.mark.parametrize("fmt", ["table", "csv", "json"])
COPY = "accord: warning: this answer was made from a copy of the audit index (--db), shown as "


def _subject(run_cli: Run, fmt: str, db: str) -> tuple[int, str, str]:
    return run_cli([*SUBJECT, "--as", "ig.jo", "--format", fmt, "--db", db])


@_SQLITE
@_FORMATS
def test_an_answer_from_an_intact_copy_says_so_on_stderr_and_exits_0(
    fmt: str, copy_db: Path, indexed: list[AuditRecord], catch_ups: list[AuditStore],
    run_cli: Run,
) -> None:  # fmt: skip
    code, out, err = _subject(run_cli, fmt, f"sqlite:///{copy_db}")
    assert code == 0, err
    is_the_document(fmt, out)
    [line] = err.splitlines()
    assert line.startswith(COPY)
    assert f"audit log: this copy, verified now: intact, {len(indexed)} records in " in line


@_SQLITE
@_FORMATS
def test_an_answer_from_a_broken_copy_says_broken_on_stderr_and_exits_1(
    fmt: str, copy_db: Path, indexed: list[AuditRecord], catch_ups: list[AuditStore],
    run_cli: Run,
) -> None:  # fmt: skip
    with sqlite3.connect(copy_db) as conn:
        conn.execute("UPDATE audit_records SET body = REPLACE(body, 'early_help', 'early_hulp') "
                     "WHERE chain = 'worker:w1' AND seq = 2")  # fmt: skip
    conn.close()
    code, out, err = _subject(run_cli, fmt, f"sqlite:///{copy_db}")
    assert code == 1
    is_the_document(fmt, out)
    [line] = err.splitlines()
    assert line.startswith(COPY)
    assert "audit log: this copy, verified now: BROKEN: audit chain 'worker:w1' " in line
