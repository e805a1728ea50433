"""The flag service's folder and files are the party's alone: its tables hold children's keys."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faust
import pytest

import broker.cli._desk_flags as desk_flags
from broker.cli import main
from broker.cli._demo_flags import FlagServiceProcess
from broker.config import Settings
from broker.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]
TEAM = "sandwell-coord"


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def _exit(argv: list[str]) -> int:
    code: Any = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = exc.code
    return int(code or 0)


@pytest.fixture
def everyday_umask() -> Iterator[None]:
    """022, as most accounts have (what left the folders 0755 and the log 0644 before); the
    command sets its own, so the test's is put back after."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


class _FaustWorker:
    """faust's worker, standing in: writes into the data folder as faust and its stores do,
    with Python's default modes, so only the process's umask keeps them private."""

    def __init__(self, app: Any, *_: Any, **__: Any) -> None:
        self.datadir = Path(app.conf.datadir)
        self.spinner = object()

    def execute_from_commandline(self) -> None:
        tables = self.datadir / "v1" / "tables"
        tables.mkdir(parents=True)
        (tables / "windows.db").write_bytes(b"state")


@pytest.mark.usefixtures("everyday_umask")
def test_the_service_makes_its_folders_0700_and_everything_it_writes_0600(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tmp_path.chmod(0o755)  # ACCORD_HOME, perhaps shared: not the service's to tighten
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    policies = ["--policies", str(REPO / "policies")]
    assert _exit(["keys", "init", *policies]) == 0
    party = tmp_path / "desk" / TEAM
    (party / "flags").mkdir(parents=True)
    for folder in (tmp_path / "desk", party, party / "flags"):
        folder.chmod(0o755)  # as an earlier Accord left them

    async def no_kafka(*_: Any) -> None:
        return None

    monkeypatch.setenv("ACCORD_KAFKA__SECURITY_PROTOCOL", "PLAINTEXT")
    monkeypatch.setattr(desk_flags, "_preflight", no_kafka)
    monkeypatch.setattr(faust, "Worker", _FaustWorker)
    assert _exit(["desk", "flags", "--as", TEAM, *policies]) == 0, capsys.readouterr().err
    tables = party / "flags" / "v1" / "tables"
    assert (_mode(party), _mode(party / "flags"), _mode(tables)) == (0o700, 0o700, 0o700)
    assert _mode(tables / "windows.db") == 0o600
    assert (_mode(tmp_path), _mode(tmp_path / "desk")) == (0o755, 0o755)  # not its own


@pytest.mark.usefixtures("everyday_umask")
def test_folders_the_service_makes_are_0700_and_a_folder_it_cannot_tighten_is_one_line(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    datadir = desk_flags.flags_datadir(home, TEAM)
    assert datadir == home / "desk" / TEAM / "flags"
    assert [_mode(f) for f in (home, home / "desk", datadir.parent, datadir)] == [0o700] * 4
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the desk folder goes")
    with pytest.raises(ConfigError, match="cannot make the flag service's folder"):
        desk_flags.flags_datadir(blocked, TEAM)


@pytest.mark.usefixtures("everyday_umask")
def test_the_demos_flag_service_log_is_0600_in_a_0700_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    service = FlagServiceProcess(Settings(home=tmp_path), TEAM)
    service.log.parent.mkdir(parents=True)
    service.log.parent.chmod(0o755)
    service.log.touch()
    service.log.chmod(0o644)  # as an earlier demo left it
    started: list[tuple[Any, ...]] = []

    async def spawn(*argv: Any, **_: Any) -> None:
        started.append(argv)

    monkeypatch.setattr(asyncio, "create_subprocess_exec", spawn)
    asyncio.run(service.start())
    assert started
    assert (_mode(service.log), _mode(service.log.parent)) == (0o600, 0o700)
