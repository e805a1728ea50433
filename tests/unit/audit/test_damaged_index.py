"""A damaged SQLite audit index (a disk fault, a copy cut short) is one line saying how to
rebuild it, never sqlite3's traceback."""

from __future__ import annotations

from pathlib import Path

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
    """Opened, then a page of records found damaged mid-command: sqlite3's DatabaseError
    reaches the command line, which says the same, not a traceback."""
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
    assert err.startswith("accord: error: a SQLite database this command read is damaged")
    assert "'accord audit index --once' into an empty file" in err
    assert len(err.strip().splitlines()) == 1
