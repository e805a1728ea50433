"""The SQLite audit index is its owner's alone: it holds who looked up which child."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.errors import AuditError
from broker.governance import open_store


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.fixture
def everyday_umask() -> Iterator[None]:
    """022, as most accounts have: what made the index 0644 before."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("everyday_umask")
def test_a_new_index_and_its_wal_and_shm_are_0600_in_folders_made_0700(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)  # a shared ACCORD_HOME: not Accord's to tighten
    db = home / "audit" / "idx" / "audit.db"
    store = open_store(f"sqlite:///{db}", home=home)
    try:
        # Open, migrated (written) in WAL mode: SQLite's -wal and -shm files are there now.
        files = {p.name: _mode(p) for p in db.parent.iterdir()}
    finally:
        store.close()
    assert files == {"audit.db": 0o600, "audit.db-wal": 0o600, "audit.db-shm": 0o600}
    assert (_mode(db.parent), _mode(db.parent.parent)) == (0o700, 0o700)
    assert _mode(home) == 0o755


@pytest.mark.usefixtures("everyday_umask")
def test_the_default_index_in_an_existing_home_is_0600_and_the_home_left_alone(
    tmp_path: Path,
) -> None:
    tmp_path.chmod(0o755)
    open_store(None, home=tmp_path).close()
    assert _mode(tmp_path / "audit.db") == 0o600
    assert _mode(tmp_path) == 0o755


@pytest.mark.usefixtures("everyday_umask")
@pytest.mark.parametrize("create", [True, False])
def test_an_index_an_earlier_accord_left_readable_by_others_is_tightened(
    tmp_path: Path,
    create: bool,
) -> None:
    db = tmp_path / "audit.db"
    open_store(f"sqlite:///{db}", home=tmp_path).close()
    leftovers = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
    for path in leftovers:
        path.touch()
        path.chmod(0o644)
    store = open_store(f"sqlite:///{db}", home=tmp_path, create=create)
    try:
        assert [_mode(p) for p in leftovers] == [0o600] * 3
    finally:
        store.close()


@pytest.mark.usefixtures("everyday_umask")
def test_a_live_index_named_through_a_symlink_has_the_wal_and_shm_beside_its_file_tightened(
    tmp_path: Path,
) -> None:
    """SQLite keeps them beside the file the link leads to: tightened there (while another
    process has the index open, SQLite keeps them as they are), none made beside the link."""
    (tmp_path / "real").mkdir()
    (tmp_path / "links").mkdir()
    db = tmp_path / "real" / "audit.db"
    link = tmp_path / "links" / "audit.db"
    link.symlink_to(Path("..") / "real" / "audit.db")
    open_store(f"sqlite:///{db}", home=tmp_path).close()
    live = sqlite3.connect(db, isolation_level=None)  # another process's, say: the index live
    try:
        live.execute("CREATE TABLE busy (x)")  # its -wal holds rows, its -shm is in use
        leftovers = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
        for path in leftovers:
            path.chmod(0o644)
        store = open_store(f"sqlite:///{link}", home=tmp_path)
        try:
            assert [_mode(p) for p in leftovers] == [0o600] * 3
            assert sorted(p.name for p in link.parent.iterdir()) == ["audit.db"]
        finally:
            store.close()
    finally:
        live.close()


@pytest.mark.usefixtures("everyday_umask")
def test_an_index_named_through_a_link_to_no_file_yet_is_made_0600_where_it_leads(
    tmp_path: Path,
) -> None:
    """Not with the umask's mode, as SQLite would make it through the link."""
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "audit.db"
    link = tmp_path / "audit.db"
    link.symlink_to(target)
    store = open_store(f"sqlite:///{link}", home=tmp_path)
    try:
        files = {p.name: _mode(p) for p in target.parent.iterdir()}
    finally:
        store.close()
    assert files == {"audit.db": 0o600, "audit.db-wal": 0o600, "audit.db-shm": 0o600}
    assert link.is_symlink()


@pytest.mark.usefixtures("everyday_umask")
def test_a_wal_named_as_a_link_to_a_file_of_ours_never_has_that_file_tightened(
    tmp_path: Path,
) -> None:
    """A link planted as ``audit.db-wal`` (in a folder another can write to) would have
    Accord chmod whatever of its own it leads to: only a file that is itself the -wal is."""
    db = tmp_path / "audit.db"
    open_store(f"sqlite:///{db}", home=tmp_path).close()
    page = tmp_path / "public.html"
    page.write_text("x")
    page.chmod(0o644)
    Path(f"{db}-wal").symlink_to(page)
    # SQLite itself may then refuse the index, a -wal that is a link (one line): either way
    # nothing was done to the file the link leads to.
    with contextlib.suppress(AuditError):
        open_store(f"sqlite:///{db}", home=tmp_path).close()
    assert _mode(page) == 0o644
    assert page.read_text() == "x"


@pytest.mark.usefixtures("everyday_umask")
@pytest.mark.parametrize(
    ("kind", "target_there"),
    [("create", False), ("create", True), ("open", True), ("read_only", True)],
)
def test_a_link_the_kernel_refuses_to_follow_is_refused_in_one_line_and_nothing_done_through_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    target_there: bool,
) -> None:
    """Where Linux protects symlinks (fs.protected_symlinks=1, Debian's default), following
    a link another user made in a sticky world-writable folder is EACCES; resolve() reads it
    with readlink, which nothing checks. This container may not protect them, so the
    kernel's refusal is stood in for: os.stat through that link raises PermissionError. The
    open ends in the one-line refusal, and nothing is made or tightened where it leads."""
    target = tmp_path / "victim" / "audit.db"
    target.parent.mkdir()
    if target_there:
        sqlite3.connect(target).close()
        target.chmod(0o644)
    shared = tmp_path / "shared"
    shared.mkdir()
    link = shared / "audit.db"
    link.symlink_to(target)
    real_stat = os.stat

    def kernel_stat(
        path: str | os.PathLike[str], *, dir_fd: int | None = None, follow_symlinks: bool = True
    ) -> os.stat_result:
        if os.fspath(path) == str(link) and follow_symlinks:
            raise PermissionError(13, "Permission denied")
        return real_stat(path, dir_fd=dir_fd, follow_symlinks=follow_symlinks)

    monkeypatch.setattr(os, "stat", kernel_stat)
    # As Path.is_file is from Python 3.13: False on every OSError, the refusal swallowed.
    monkeypatch.setattr(Path, "is_file", lambda self, **_: os.path.isfile(self))  # noqa: PTH113
    with pytest.raises(AuditError) as raised:
        open_store(
            f"sqlite:///{link}", home=tmp_path, create=kind == "create",
            read_only=kind == "read_only",
        )  # fmt: skip
    monkeypatch.undo()
    assert str(raised.value) == f"cannot open the audit index at {link}: PermissionError"
    if target_there:
        assert _mode(target) == 0o644
    assert sorted(p.name for p in target.parent.iterdir()) == (["audit.db"] if target_there else [])


def _sticky_folder(tmp_path: Path) -> Path:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # as /tmp: anyone may add a name, only its owner replace it
    return shared


def _owned_by(monkeypatch: pytest.MonkeyPatch, path: Path, uid: int) -> None:
    """os.lstat says ``path`` belongs to ``uid`` (this account cannot chown to another)."""
    real_lstat = os.lstat

    def lstat(name: str | os.PathLike[str], *, dir_fd: int | None = None) -> os.stat_result:
        st = real_lstat(name, dir_fd=dir_fd)
        if os.fspath(name) == str(path):
            return os.stat_result((*st[:4], uid, *st[5:]))
        return st

    monkeypatch.setattr(os, "lstat", lstat)


@pytest.mark.usefixtures("everyday_umask")
@pytest.mark.parametrize("kind", ["file", "link", "wal"])
@pytest.mark.parametrize("create", [True, False])
def test_another_accounts_file_or_link_in_a_sticky_shared_folder_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, create: bool
) -> None:
    """Planted where the index (or its -wal) goes, in a folder such as /tmp: Accord would
    write who looked up which child into a file another can read, or follow a link another
    can point anywhere (fs.protected_regular/protected_symlinks' rule, whatever they are
    set to). Nothing is written or tightened there."""
    shared = _sticky_folder(tmp_path)
    db = shared / "audit.db"
    victim = tmp_path / "victim.db"
    victim.write_bytes(b"")
    victim.chmod(0o666)
    planted = Path(f"{db}-wal") if kind == "wal" else db
    if kind == "link":
        db.symlink_to(victim)
    elif kind == "wal":
        sqlite3.connect(db).close()
        planted.write_bytes(b"")
        planted.chmod(0o666)
    else:
        db.write_bytes(b"")
        db.chmod(0o666)
    _owned_by(monkeypatch, planted, os.geteuid() + 1)
    with pytest.raises(AuditError) as raised:
        open_store(f"sqlite:///{db}", home=tmp_path, create=create)
    assert str(raised.value) == (
        f"cannot open the audit index at {planted}: it belongs to another account in a "
        "shared folder"
    )
    monkeypatch.undo()
    assert victim.stat().st_size == planted.stat().st_size == 0
    assert _mode(victim) == _mode(planted) == 0o666


@pytest.mark.usefixtures("everyday_umask")
@pytest.mark.parametrize("where", ["sticky, the folder's owner's", "not sticky"])
def test_an_index_of_another_account_is_opened_where_none_but_it_can_replace_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """The folder's owner's file in its own sticky folder, or any account's outside a sticky
    world-writable folder (root running a command on a service account's index): opened."""
    folder = _sticky_folder(tmp_path) if where.startswith("sticky") else tmp_path
    db = folder / "audit.db"
    open_store(f"sqlite:///{db}", home=tmp_path).close()
    if where.startswith("sticky"):
        real_stat = os.stat

        def stat(
            path: str | os.PathLike[str], *, dir_fd: int | None = None,
            follow_symlinks: bool = True,
        ) -> os.stat_result:  # fmt: skip
            st = real_stat(path, dir_fd=dir_fd, follow_symlinks=follow_symlinks)
            if os.fspath(path) == str(folder):
                return os.stat_result((*st[:4], os.geteuid() + 1, *st[5:]))
            return st

        monkeypatch.setattr(os, "stat", stat)
    _owned_by(monkeypatch, db, os.geteuid() + 1)
    open_store(f"sqlite:///{db}", home=tmp_path, create=False).close()


@pytest.mark.usefixtures("everyday_umask")
def test_a_wal_swapped_for_a_link_after_it_was_looked_at_is_never_tightened_through_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mode is checked and changed on one open file (O_NOFOLLOW), not looked up by name
    and then chmod()ed by name, which follows a link put there in between."""
    db = tmp_path / "audit.db"
    open_store(f"sqlite:///{db}", home=tmp_path).close()
    wal = Path(f"{db}-wal")
    wal.write_bytes(b"")
    wal.chmod(0o644)
    page = tmp_path / "public.html"
    page.write_text("x")
    page.chmod(0o644)
    real_stat, real_lstat = os.stat, os.lstat

    swapped: list[bool] = []

    def swap_after(st: os.stat_result) -> os.stat_result:
        if not swapped:  # once: looked at as a file, then a link there
            swapped.append(True)
            wal.unlink()
            wal.symlink_to(page)
        return st

    def stat(
        path: str | os.PathLike[str], *, dir_fd: int | None = None, follow_symlinks: bool = True
    ) -> os.stat_result:
        st = real_stat(path, dir_fd=dir_fd, follow_symlinks=follow_symlinks)
        return swap_after(st) if os.fspath(path) == str(wal) and not follow_symlinks else st

    def lstat(path: str | os.PathLike[str], *, dir_fd: int | None = None) -> os.stat_result:
        st = real_lstat(path, dir_fd=dir_fd)
        return swap_after(st) if os.fspath(path) == str(wal) else st

    monkeypatch.setattr(os, "stat", stat)
    monkeypatch.setattr(os, "lstat", lstat)
    with contextlib.suppress(AuditError):  # SQLite may refuse a -wal that is a link
        open_store(f"sqlite:///{db}", home=tmp_path).close()
    monkeypatch.undo()
    assert wal.is_symlink()
    assert _mode(page) == 0o644


_TRY_TO_WRITE = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], timeout=0.3, isolation_level=None)
try:
    conn.execute("BEGIN IMMEDIATE")
except sqlite3.OperationalError:
    print("blocked")
else:
    print("wrote")
"""


@pytest.mark.parametrize(
    "open_to_others", ["", "-wal", "-shm"], ids=["private", "old-wal-0644", "old-shm-0644"]
)
def test_opening_the_index_again_in_a_process_keeps_its_other_connections_locks(
    tmp_path: Path, open_to_others: str
) -> None:
    """Review s43 (govwalk): the console re-opens the index while its indexer writes; closing
    a descriptor of the file dropped the indexer's SQLite locks, another process wrote at the
    same time, and the index was corrupted ("database disk image is malformed")."""
    import subprocess
    import sys

    db = tmp_path / "audit.db"
    open_store(f"sqlite:///{db}", home=tmp_path).close()
    writer = sqlite3.connect(db, isolation_level=None)
    try:
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("CREATE TABLE IF NOT EXISTS probe(x)")
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO probe VALUES (1)")
        if open_to_others:  # as an earlier Accord left them: tightened on this open
            Path(f"{db}{open_to_others}").chmod(0o644)

        def other_process() -> str:
            argv = [sys.executable, "-c", _TRY_TO_WRITE, str(db)]
            return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()

        assert other_process() == "blocked"
        open_store(f"sqlite:///{db}", home=tmp_path, create=False).close()
        assert other_process() == "blocked"
        if open_to_others:
            assert _mode(Path(f"{db}{open_to_others}")) == 0o600
    finally:
        writer.close()
