"""A desk's SQLite store is its party's alone from the start: the file and its -wal, -shm
and -journal 0600 (the -wal holds the latest records as much as the file), ``<home>/desk``
0700; what an earlier Accord left open is tightened with one warning naming the paths, and
what cannot be tightened is refused in one line."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from broker.desk import open_desk_store
from broker.errors import ConfigError

PARTY = "cog-tipton"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith(f"{PARTY}.db"))


def test_a_new_store_and_its_wal_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with capture_logs() as logs:
            store = open_desk_store(None, home=tmp_path, party=PARTY)
    finally:
        os.umask(old)
    try:
        desk = tmp_path / "desk"
        names = [p.name for p in _files(desk)]
        assert f"{PARTY}.db-wal" in names  # WAL mode: the records' latest pages are here
        assert {p.name: _mode(p) for p in _files(desk)} == dict.fromkeys(names, 0o600)
        assert _mode(desk) == 0o700
        assert not [e for e in logs if e["event"] == "desk_store_made_private"]  # nothing to say
    finally:
        store.close()


def test_a_restart_tightens_the_folder_and_every_file_of_the_store_with_one_warning(
    tmp_path: Path,
) -> None:
    open_desk_store(None, home=tmp_path, party=PARTY).close()
    desk = tmp_path / "desk"
    db = desk / f"{PARTY}.db"
    # As an earlier Accord left them: the sidecars a crash leaves behind, all 0644.
    for suffix in ("-wal", "-shm", "-journal"):
        Path(f"{db}{suffix}").touch()
    for path in _files(desk):
        path.chmod(0o644)
    desk.chmod(0o755)
    with capture_logs() as logs:
        store = open_desk_store(None, home=tmp_path, party=PARTY)
    try:
        assert _mode(desk) == 0o700
        assert {p.name: _mode(p) for p in _files(desk)} == {p.name: 0o600 for p in _files(desk)}
        assert len(_files(desk)) >= 3  # the file, its -wal and -shm at least
    finally:
        store.close()
    [warning] = [e for e in logs if e["event"] == "desk_store_made_private"]
    assert warning["log_level"] == "warning"
    assert sorted(warning["paths"]) == sorted(
        [str(desk), str(db), *(f"{db}{s}" for s in ("-wal", "-shm", "-journal"))]
    )


def test_a_folder_the_url_names_is_left_as_it_is_its_files_are_not(tmp_path: Path) -> None:
    """``sqlite:///var/lib/accord/desk.db``: that folder may be shared, as ACCORD_HOME may."""
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    wal = shared / "desk.db-wal"
    wal.touch()
    wal.chmod(0o644)
    with capture_logs() as logs:
        store = open_desk_store(f"sqlite:///{shared / 'desk.db'}", home=tmp_path, party=PARTY)
    try:
        assert _mode(shared) == 0o755
        assert _mode(wal) == 0o600  # while open: SQLite removes the -wal at the last close
    finally:
        store.close()
    [warning] = [e for e in logs if e["event"] == "desk_store_made_private"]
    assert warning["paths"] == [str(wal)]


def test_a_sidecar_that_cannot_be_made_private_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_desk_store(None, home=tmp_path, party=PARTY).close()
    shm = tmp_path / "desk" / f"{PARTY}.db-shm"
    shm.touch()
    shm.chmod(0o644)

    def refused(name: Path) -> int | None:
        raise PermissionError(1, "Operation not permitted", str(name))

    monkeypatch.setattr("broker.desk._store_private.tighten_file", refused)
    with pytest.raises(ConfigError) as raised:
        open_desk_store(None, home=tmp_path, party=PARTY)
    assert str(raised.value) == (
        f"desk store file {shm} is accessible by others and cannot be made private "
        "(Operation not permitted); chmod 600 it"
    )
