"""``accord desk add-user`` makes the desk's folders (``<home>/desk``, and the party's for its
accounts file) private as it makes them, so the desk's first start after it has nothing to
tighten and no ``desk_store_made_private`` warning to give: that warning is for a folder
someone else loosened."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from broker.desk import open_desk_store
from broker.keys import FileKeyStore
from tests.unit.audit.conftest import Run

PARTY = "cog-tipton"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_first_start_after_add_user_finds_the_desk_folder_private(
    tmp_path: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    monkeypatch.setenv("ACCORD_KEYSTORE__PATH", str(tmp_path / "keys"))
    FileKeyStore(tmp_path / "keys", create=True)
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough secret\n"))
    old = os.umask(0o022)  # the usual umask: a folder made without a mode is 0755
    try:
        argv = ["desk", "add-user", "--as", PARTY, "kim.ward", "--password-stdin", "--no-totp"]
        assert run_cli(argv)[0] == 0
        desk = tmp_path / "desk"
        assert (_mode(desk), _mode(desk / PARTY)) == (0o700, 0o700)
        with capture_logs() as logs:
            store = open_desk_store(None, home=tmp_path, party=PARTY)
        store.close()
    finally:
        os.umask(old)
    assert not [e for e in logs if e["event"] == "desk_store_made_private"]
