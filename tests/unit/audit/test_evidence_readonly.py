"""A copy kept on storage this account cannot write to (a write-protected folder, a read-only
mount) is still read by `accord audit ... --db COPY`: SQLite's ``mode=ro`` needs to create the
WAL database's ``-shm`` beside it, so the copy is read ``immutable`` when its ``-wal`` holds no
rows, and refused in one line, saying what to do, when it does (docs/governance.md)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

import broker.governance._dialects
from broker.errors import AuditError
from broker.governance import open_store


class _Unwritable:
    """A ``mode=ro`` connection to a WAL database in a folder it cannot create ``-shm`` in:
    refused at its first statement, as SQLite refuses it (SQLITE_READONLY)."""

    def execute(self, *_a: object) -> Any:
        exc = sqlite3.OperationalError("attempt to write a readonly database")
        exc.sqlite_errorcode = 8  # type: ignore[attr-defined]  # as SQLite sets it
        raise exc

    def close(self) -> None:
        pass


@pytest.fixture
def unwritable(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every ``mode=ro`` open behaves as on read-only storage (root can write anywhere, so the
    storage is simulated); the URIs opened are listed."""
    connect = sqlite3.connect
    opened: list[str] = []

    def fake(database: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(database))
        return _Unwritable() if "mode=ro" in str(database) else connect(database, *args, **kwargs)

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
