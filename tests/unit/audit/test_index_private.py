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

    def kernel_stat(path: object, *args: object, **kwargs: object) -> os.stat_result:
        if os.fspath(path) == str(link) and kwargs.get("follow_symlinks", True):  # type: ignore[arg-type]
            raise PermissionError(13, "Permission denied")
        return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", kernel_stat)
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
