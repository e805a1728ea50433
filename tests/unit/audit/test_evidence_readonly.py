"""A copy kept on storage this account cannot write to (a write-protected folder, a read-only
mount) is still read by `accord audit ... --db COPY`: SQLite's ``mode=ro`` needs to create the
WAL database's ``-shm`` beside it, so the copy is read ``immutable`` when its ``-wal`` holds no
rows, and refused in one line, saying what to do, when it does (docs/governance.md). A copy with
a write never finished in a ``-journal`` beside it is refused, never read half written."""

from __future__ import annotations

import hashlib
import shlex
import shutil
import sqlite3
import subprocess
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
    assert 'in that folder: sqlite3 ./copy.db "PRAGMA quick_check"; then' in str(exc.value)
    assert "copy the file and its -journal to a folder you can write to" in str(exc.value)
    assert not any("immutable" in u for u in unwritable)


def _advice(message: str) -> str:
    """The shell command the hot-journal refusal says to run in the folder of the copy."""
    return message.split("in that folder: ", 1)[1].split("; then name that copy", 1)[0]


@pytest.mark.parametrize("name", ["my copy.db", "the copy's.db", "-copy.db"])
def test_the_command_a_journal_refusal_prints_names_the_copy_as_one_shell_word(
    name: str, unwritable: list[str], tmp_path: Path
) -> None:
    """A space, a ``'`` or a leading ``-`` in the copy's name: the printed sqlite3 command,
    read as a POSIX shell reads it, still opens that file (not a file ``my``, not an option)."""
    copy = tmp_path / name
    open_store(f"sqlite:///{copy}", home=tmp_path).close()
    (tmp_path / f"{name}-journal").write_bytes(b"\xd9\xd5\x05\xf9" + b"\0" * 28)
    with pytest.raises(AuditError) as exc:
        open_store(f"sqlite:///{copy}", home=tmp_path, create=False, read_only=True)
    assert "\n" not in str(exc.value)
    assert f"{name}-journal beside it holds a write never finished" in str(exc.value)
    assert shlex.split(_advice(str(exc.value))) == ["sqlite3", f"./{name}", "PRAGMA quick_check"]


@pytest.fixture
def linked(tmp_path: Path) -> tuple[Path, Path]:
    """A copy kept in ``vault/real.db``, named through a symlink ``links/evidence.db``."""
    (tmp_path / "vault").mkdir()
    (tmp_path / "links").mkdir()
    real = tmp_path / "vault" / "real.db"
    open_store(f"sqlite:///{real}", home=tmp_path).close()
    link = tmp_path / "links" / "evidence.db"
    link.symlink_to(real)
    return real, link


def test_a_copy_named_through_a_symlink_whose_wal_holds_rows_is_refused_not_read_without_them(
    linked: tuple[Path, Path], unwritable: list[str], tmp_path: Path
) -> None:
    """SQLite reads the ``-wal`` beside the file, not beside the link: looking beside the link
    found none, and the copy was read immutable, its committed rows left out."""
    real, link = linked
    (tmp_path / "vault" / "real.db-wal").write_bytes(b"\0" * 32)
    with pytest.raises(AuditError) as exc:
        open_store(f"sqlite:///{link}", home=tmp_path, create=False, read_only=True)
    assert f"at {real} read-only" in str(exc.value)
    assert "real.db-wal holds rows" in str(exc.value)
    assert not any("immutable" in u for u in unwritable)


def test_a_copy_named_through_a_symlink_with_a_journal_is_refused_naming_the_real_pair(
    linked: tuple[Path, Path], unwritable: list[str], tmp_path: Path
) -> None:
    """The names to keep, and to give sqlite3, are the file's and its journal's: the link's
    would leave the journal behind."""
    real, link = linked
    (tmp_path / "vault" / "real.db-journal").write_bytes(b"\xd9\xd5\x05\xf9" + b"\0" * 28)
    with pytest.raises(AuditError) as exc:
        open_store(f"sqlite:///{link}", home=tmp_path, create=False, read_only=True)
    assert f"at {real} read-only: real.db-journal beside it holds a write never" in str(exc.value)
    assert shlex.split(_advice(str(exc.value)))[1] == "./real.db"
    assert "evidence.db" not in str(exc.value)
    assert not any("immutable" in u for u in unwritable)


def test_a_hot_journal_named_through_a_symlink_is_refused_naming_the_real_pair(
    linked: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On storage that can be written to SQLite itself refuses the hot journal
    (SQLITE_READONLY_ROLLBACK); the refusal names the file's journal, not the link's."""
    real, link = linked
    (tmp_path / "vault" / "real.db-journal").write_bytes(b"\xd9\xd5\x05\xf9" + b"\0" * 28)
    connect = sqlite3.connect

    def fake(database: Any, *args: Any, **kwargs: Any) -> Any:
        if "mode=ro" in str(database):
            return _Unwritable(776)
        return connect(database, *args, **kwargs)

    monkeypatch.setattr(broker.governance._dialects.sqlite3, "connect", fake)
    with pytest.raises(AuditError) as exc:
        open_store(f"sqlite:///{link}", home=tmp_path, create=False, read_only=True)
    assert f"at {real} read-only: real.db-journal beside it" in str(exc.value)
    assert shlex.split(_advice(str(exc.value)))[1] == "./real.db"


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


@pytest.mark.parametrize("name", ["vacuumed.db", "my vacuumed copy's.db"])
@pytest.mark.parametrize("audit_db_url", ["sqlite"], indirect=True)
def test_a_copy_with_a_hot_journal_is_refused_not_read_half_written(
    name: str, indexed: list[AuditRecord], audit_db_url: str, audit_home: Path, tmp_path: Path
) -> None:
    """A real one: a ``VACUUM INTO`` copy (rollback-journal mode) caught mid-write, its
    changed file and its ``-journal`` copied aside before the write ended; the command the
    refusal prints, run as printed, rolls the write back."""
    live = audit_db_url.removeprefix("sqlite:///")
    with sqlite3.connect(live) as conn:
        conn.execute("VACUUM INTO ?", (str(tmp_path / name),))
    conn.close()
    writer = sqlite3.connect(tmp_path / name, isolation_level=None)
    try:
        writer.execute("PRAGMA cache_size=1")  # pages spill to the file mid-transaction
        writer.execute("BEGIN")
        writer.execute("DELETE FROM audit_records WHERE seq % 2 = 0")
        writer.execute("UPDATE audit_records SET body = body || ' '")
        (tmp_path / "aside").mkdir()
        for each in (name, f"{name}-journal"):
            shutil.copy(tmp_path / each, tmp_path / "aside" / each)
        writer.execute("ROLLBACK")
    finally:
        writer.close()
    copy = tmp_path / "aside" / name
    journal = tmp_path / "aside" / f"{name}-journal"
    assert _sha(copy) != _sha(tmp_path / name)  # the file itself is half written
    before = (_sha(copy), _sha(journal))
    with pytest.raises(AuditError) as exc:
        open_store(f"sqlite:///{copy}", home=audit_home, create=False, read_only=True)
    assert "\n" not in str(exc.value)
    assert f"{name}-journal beside it holds a write never finished" in str(exc.value)
    assert (_sha(copy), _sha(journal)) == before  # the evidence is as it was
    # What the refusal says to do gives the copy as it was before the write: its command run
    # by a shell as printed (the sqlite3 shell), or as a shell would split it (no sqlite3).
    shutil.copytree(tmp_path / "aside", tmp_path / "work")
    command = _advice(str(exc.value))
    if shutil.which("sqlite3"):
        done = subprocess.run(
            ["sh", "-c", command], cwd=tmp_path / "work", capture_output=True, text=True,
            check=False,
        )  # fmt: skip
        assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr
    else:
        program, file, pragma = shlex.split(command)
        assert program == "sqlite3"
        with sqlite3.connect(tmp_path / "work" / file) as conn:
            assert conn.execute(pragma).fetchone() == ("ok",)
        conn.close()
    assert not (tmp_path / "work" / f"{name}-journal").exists()  # rolled back
    store = open_store(
        f"sqlite:///{tmp_path / 'work' / name}", home=audit_home, create=False, read_only=True
    )
    try:
        assert store.count() == len(indexed)
    finally:
        store.close()
