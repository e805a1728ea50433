"""A copy kept on storage this account cannot write to (a write-protected folder, a read-only
mount) is still read by `accord audit ... --db COPY`: SQLite's ``mode=ro`` needs to create the
WAL database's ``-shm`` beside it, so the copy is read ``immutable`` when its ``-wal`` holds no
rows, and refused in one line, saying what to do, when it does (docs/governance.md). A copy with
a write never finished in a ``-journal`` beside it is refused, never read half written."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import broker.governance._dialects
from broker.audit import AuditRecord
from broker.errors import AuditError
from broker.governance import open_store

# What SQLite's mode=ro says (extended codes) when only unwritable storage is in the way:
# SQLITE_READONLY_CANTINIT, SQLITE_READONLY_DIRECTORY, SQLITE_CANTOPEN.
STORAGE_CODES = [1288, 1544, 14]


class _Unwritable:
    """A ``mode=ro`` connection refused at its first statement with ``code``, as SQLite
    refuses it (1288, say: a WAL database in a folder it cannot create ``-shm`` in)."""

    def __init__(self, code: int) -> None:
        self.code = code

    def execute(self, *_a: object) -> Any:
        exc = sqlite3.OperationalError("attempt to write a readonly database")
        exc.sqlite_errorcode = self.code  # type: ignore[attr-defined]  # as SQLite sets it
        raise exc

    def close(self) -> None:
        pass


@pytest.fixture(params=STORAGE_CODES)
def unwritable(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every ``mode=ro`` open behaves as on read-only storage, refused with the code the
    parameter gives (root can write anywhere, so the storage is simulated); the URIs opened
    are listed."""
    connect = sqlite3.connect
    opened: list[str] = []

    def fake(database: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(database))
        if "mode=ro" in str(database):
            return _Unwritable(request.param)
        return connect(database, *args, **kwargs)

    monkeypatch.setattr(broker.governance._dialects.sqlite3, "connect", fake)
    return opened


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    path = tmp_path / "copy.db"
    open_store(f"sqlite:///{path}", home=tmp_path).close()  # WAL, its -wal checkpointed away
    return path


def test_a_copy_on_read_only_storage_with_no_rows_in_a_wal_is_read_immutable(
    copy: Path, unwritable: list[str], tmp_path: Path
) -> None:
    store = open_store(f"sqlite:///{copy}", home=tmp_path, create=False, read_only=True)
    try:
        assert store.count() == 0
    finally:
        store.close()
    assert [u.rpartition("?")[2] for u in unwritable] == ["mode=ro", "immutable=1"]


def test_a_copy_on_read_only_storage_whose_wal_holds_rows_is_refused_saying_what_to_do(
    copy: Path, unwritable: list[str], tmp_path: Path
) -> None:
    (tmp_path / "copy.db-wal").write_bytes(b"\0" * 32)
    with pytest.raises(AuditError) as exc:
        open_store(f"sqlite:///{copy}", home=tmp_path, create=False, read_only=True)
    assert "\n" not in str(exc.value)
    assert "copy the file and its -wal to a folder you can write to" in str(exc.value)
    assert not any("immutable" in u for u in unwritable)  # its rows would go unread


def test_a_copy_on_read_only_storage_with_a_journal_beside_it_is_refused_never_read(
    copy: Path, unwritable: list[str], tmp_path: Path
) -> None:
    """A ``-journal`` holds a write never finished, half in the file: ``immutable=1`` would
    read it half done."""
    (tmp_path / "copy.db-journal").write_bytes(b"\xd9\xd5\x05\xf9" + b"\0" * 28)
    with pytest.raises(AuditError) as exc:
        open_store(f"sqlite:///{copy}", home=tmp_path, create=False, read_only=True)
    assert "\n" not in str(exc.value)
    assert "copy.db-journal beside it holds a write never finished" in str(exc.value)
    # A renamed copy would be read half written: the advice keeps the names, and is runnable.
    assert "keeping their names" in str(exc.value)
    assert "'sqlite3 copy.db \"PRAGMA quick_check\"'" in str(exc.value)
    assert "copy the file and its -journal to a folder you can write to" in str(exc.value)
    assert not any("immutable" in u for u in unwritable)


@pytest.mark.parametrize(
    ("code", "says"),
    [(776, "holds a write never finished"), (264, "OperationalError"), (8, "OperationalError")],
    ids=["readonly_rollback", "readonly_recovery", "bare_readonly"],
)
def test_a_copy_refused_for_anything_but_its_storage_is_never_read_immutable(
    code: int, says: str, copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLITE_READONLY_ROLLBACK (a hot -journal) and _RECOVERY (a -wal to recover) are
    SQLITE_READONLY too (776 & 0xFF == 8), but immutable=1 would read past what they guard."""
    connect = sqlite3.connect
    opened: list[str] = []

    def fake(database: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(database))
        if "mode=ro" in str(database):
            return _Unwritable(code)
        return connect(database, *args, **kwargs)

    monkeypatch.setattr(broker.governance._dialects.sqlite3, "connect", fake)
    with pytest.raises(AuditError) as exc:
        open_store(f"sqlite:///{copy}", home=tmp_path, create=False, read_only=True)
    assert says in str(exc.value)
    assert [u.rpartition("?")[2] for u in opened] == ["mode=ro"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("audit_db_url", ["sqlite"], indirect=True)
def test_a_copy_with_a_hot_journal_is_refused_not_read_half_written(
    indexed: list[AuditRecord], audit_db_url: str, audit_home: Path, tmp_path: Path
) -> None:
    """A real one: a ``VACUUM INTO`` copy (rollback-journal mode) caught mid-write, its
    changed file and its ``-journal`` copied aside before the write ended."""
    live = audit_db_url.removeprefix("sqlite:///")
    with sqlite3.connect(live) as conn:
        conn.execute("VACUUM INTO ?", (str(tmp_path / "vacuumed.db"),))
    conn.close()
    writer = sqlite3.connect(tmp_path / "vacuumed.db", isolation_level=None)
    try:
        writer.execute("PRAGMA cache_size=1")  # pages spill to the file mid-transaction
        writer.execute("BEGIN")
        writer.execute("DELETE FROM audit_records WHERE seq % 2 = 0")
        writer.execute("UPDATE audit_records SET body = body || ' '")
        (tmp_path / "aside").mkdir()
        for name in ("vacuumed.db", "vacuumed.db-journal"):
            shutil.copy(tmp_path / name, tmp_path / "aside" / name)
        writer.execute("ROLLBACK")
    finally:
        writer.close()
    copy = tmp_path / "aside" / "vacuumed.db"
    journal = tmp_path / "aside" / "vacuumed.db-journal"
    assert _sha(copy) != _sha(tmp_path / "vacuumed.db")  # the file itself is half written
    before = (_sha(copy), _sha(journal))
    with pytest.raises(AuditError) as exc:
        open_store(f"sqlite:///{copy}", home=audit_home, create=False, read_only=True)
    assert "\n" not in str(exc.value)
    assert "vacuumed.db-journal beside it holds a write never finished" in str(exc.value)
    assert (_sha(copy), _sha(journal)) == before  # the evidence is as it was
    # What the refusal says to do gives the copy as it was before the write.
    shutil.copytree(tmp_path / "aside", tmp_path / "work")
    with sqlite3.connect(tmp_path / "work" / "vacuumed.db") as conn:
        assert conn.execute("PRAGMA quick_check").fetchone() == ("ok",)
    conn.close()
    store = open_store(
        f"sqlite:///{tmp_path / 'work' / 'vacuumed.db'}", home=audit_home, create=False,
        read_only=True,
    )  # fmt: skip
    try:
        assert store.count() == len(indexed)
    finally:
        store.close()
