"""A damaged SQLite audit index (a disk fault, a copy cut short) is one line saying how to
rebuild it, never sqlite3's traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.governance import open_store
from broker.keys import FileKeyStore
from broker.linkage import Linker
from tests.unit.audit.conftest import KeystoreAuditVerifier, Run, index_records, worker_chain


def test_a_damaged_index_is_one_line_saying_how_to_rebuild_it(
    audit_home: Path, keys: FileKeyStore, linker: Linker, run_cli: Run
) -> None:
    db = audit_home / "audit.db"
    store = open_store(f"sqlite:///{db}", home=audit_home)
    try:
        for _ in range(40):  # pages enough that one in the middle holds records
            index_records(store, KeystoreAuditVerifier(keys), worker_chain(linker, keys),
                          start=store.offsets("accord.audit").get(0, 0))  # fmt: skip
    finally:
        store.close()
    size = db.stat().st_size
    with db.open("r+b") as f:  # pages past the first overwritten, as a disk fault would
        f.seek(4096)
        f.write(b"\xff" * (size - 4096))
    code, out, err = run_cli(["audit", "verify", "--db", f"sqlite:///{db}"])
    assert code != 0, err
    assert out == ""
    assert err.startswith(f"accord: error: cannot open the audit index at {db}: damaged")
    assert "'accord audit index --once' into an empty file" in err
    assert len(err.strip().splitlines()) == 1


def test_an_index_damaged_past_what_opening_reads_is_one_line_too(
    audit_home: Path, keys: FileKeyStore, linker: Linker, run_cli: Run
) -> None:
    """Opened, then a page of records found damaged mid-command: the index's own query says
    so and how to rebuild it, not a traceback."""
    db = audit_home / "audit.db"
    store = open_store(f"sqlite:///{db}", home=audit_home)
    try:
        for _ in range(40):
            index_records(store, KeystoreAuditVerifier(keys), worker_chain(linker, keys),
                          start=store.offsets("accord.audit").get(0, 0))  # fmt: skip
        root = store._q("SELECT rootpage FROM sqlite_master WHERE name = 'audit_records'")
    finally:
        store.close()
    with db.open("r+b") as f:  # the records table's root page overwritten
        f.seek((int(root[0][0]) - 1) * 4096)
        f.write(b"\xff" * 4096)
    code, _, err = run_cli(["audit", "verify", "--db", f"sqlite:///{db}"])
    assert code == 1, err
    assert err.startswith(f"accord: error: the audit index at {db} is damaged (")
    assert "'accord audit index --once' into an empty file" in err
    assert len(err.strip().splitlines()) == 1


def test_a_damaged_sqlite_database_the_command_line_cannot_name_gets_no_audit_advice(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review s43r2: a desk's store is not rebuilt from a topic; and sqlite3's other errors
    are bugs, kept as tracebacks."""
    import sqlite3

    from broker.cli import _app

    def damaged(**_: object) -> None:
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(_app, "build_app", lambda: damaged)
    with pytest.raises(SystemExit) as ended:
        _app.main([])
    assert ended.value.code == 1
    err = capsys.readouterr().err
    said = "a SQLite database could not be used (database disk image is malformed)"
    assert err == f"accord: error: {said}\n"

    def misused(**_: object) -> None:
        raise sqlite3.ProgrammingError("Cannot operate on a closed database.")

    monkeypatch.setattr(_app, "build_app", lambda: misused)
    with pytest.raises(sqlite3.ProgrammingError):
        _app.main([])
