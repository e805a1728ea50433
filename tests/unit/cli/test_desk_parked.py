"""``accord desk parked --as PARTY``: lists the desk's parked records by place, time and
claimed signer, never their content; drops one, several or all only with ``--force``; says
each mistake in one line on stderr with a non-zero exit, dropping nothing."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.sdk import SqliteReplayMemory, default_replay_file
from broker.topics import deliver
from tests.unit.audit.conftest import Run
from tests.unit.sdk.keyworld import eid, sealed
from tests.unit.sdk.test_subscriber_parked import World

PARTY = "hub-a"
DESK = f"{PARTY}.desk"
TOPIC = deliver(PARTY)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _parked(home: Path, tmp: Path, offsets: list[int], group: str = DESK) -> tuple[Path, World]:
    """The desk's replay memory with deliveries parked at ``offsets``, two hours ago."""
    world = World(tmp)
    path = default_replay_file(group, home)
    at = datetime.fromtimestamp(time.time() - 2 * 3600 - 60, UTC)
    memory = SqliteReplayMemory(path, group=group, clock=lambda: at)
    for offset in offsets:
        memory.park(sealed(world.new, eid(offset), offset))
    memory.close()
    return path, world


def _dropped_logged(err: str) -> list[int]:
    """The offsets each drop's log line names (the log, as the bounds' drops are)."""
    lines = [json.loads(line) for line in err.splitlines()]
    assert {line["event"] for line in lines} <= {"parked_record_dropped"}
    assert all(line["why"] == "dropped by an operator" for line in lines)
    return [line["offset"] for line in lines]


def _left(path: Path, group: str = DESK) -> list[int]:
    memory = SqliteReplayMemory(path, group=group)
    try:
        return [e.offset for e in memory.parked_entries()]
    finally:
        memory.close()


def test_the_list_names_place_time_age_and_claimed_signer_and_nothing_else(
    home: Path, tmp_path: Path, run_cli: Run
) -> None:
    path, world = _parked(home, tmp_path, [3, 1])
    code, out, err = run_cli(["desk", "parked", "--as", PARTY])
    assert (code, err) == (0, "")
    header, first, second, summary = out.splitlines()
    columns = ("TOPIC", "PARTITION", "OFFSET", "PARKED AT (UTC)", "AGE", "SIGNER KEY (CLAIMED)")
    assert tuple(re.split(r"\s{2,}", header)) == columns
    signer = world.new.signing_key("worker").key_id
    for line, offset in ((first, 1), (second, 3)):
        cells = line.split()
        assert cells[:3] == [TOPIC, "0", str(offset)]
        assert cells[5:] == ["2h", "1m", signer]
    assert summary.startswith(f"2 parked in {path}: ")
    assert "accord keys import" in summary
    assert eid(1) not in out


def test_nothing_parked_says_so(home: Path, tmp_path: Path, run_cli: Run) -> None:
    _parked(home, tmp_path, [])
    code, out, err = run_cli(["desk", "parked", "--as", PARTY])
    assert (code, err) == (0, "")
    assert out.startswith("no records parked in ")


def test_another_group_of_the_partys_is_listed_with_group(
    home: Path, tmp_path: Path, run_cli: Run
) -> None:
    _parked(home, tmp_path, [7], group=f"{PARTY}.tail")
    code, out, _err = run_cli(["desk", "parked", "--as", PARTY, "--group", f"{PARTY}.tail"])
    assert code == 0
    assert out.splitlines()[1].split()[:3] == [TOPIC, "0", "7"]


def test_a_drop_without_force_is_refused_and_drops_nothing(
    home: Path, tmp_path: Path, run_cli: Run
) -> None:
    path, _ = _parked(home, tmp_path, [1, 3])
    for drop in (["--drop", f"{TOPIC}:0:1"], ["--drop-all"]):
        code, out, err = run_cli(["desk", "parked", "--as", PARTY, *drop])
        assert code != 0
        assert out == ""
        assert err.startswith("accord: error: refusing to drop")
        assert "--force" in err
        assert len(err.strip().splitlines()) == 1
    assert _left(path) == [1, 3]


def test_drop_with_force_drops_only_the_records_named(
    home: Path, tmp_path: Path, run_cli: Run
) -> None:
    path, _ = _parked(home, tmp_path, [1, 3, 5])
    code, out, err = run_cli(
        ["desk", "parked", "--as", PARTY, "--drop", f"{TOPIC}:0:1", "--drop", f"{TOPIC}:0:5",
         "--force"]
    )  # fmt: skip
    assert code == 0
    assert _dropped_logged(err) == [1, 5]
    assert out.splitlines() == [f"dropped {TOPIC}:0:1", f"dropped {TOPIC}:0:5"]
    assert _left(path) == [3]


def test_drop_all_with_force_drops_every_record(home: Path, tmp_path: Path, run_cli: Run) -> None:
    path, _ = _parked(home, tmp_path, [1, 3])
    code, out, err = run_cli(["desk", "parked", "--as", PARTY, "--drop-all", "--force"])
    assert code == 0
    assert _dropped_logged(err) == [1, 3]
    assert out.splitlines() == [f"dropped {TOPIC}:0:1", f"dropped {TOPIC}:0:3"]
    assert _left(path) == []


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--drop", f"{TOPIC}:0:2", "--force"], f"no record parked at {TOPIC}:0:2"),
        (["--drop", f"{TOPIC}:0:1", "--drop", f"{TOPIC}:0:2", "--force"], "nothing was dropped"),
        (["--drop", "0:1", "--force"], "TOPIC:PARTITION:OFFSET"),
        (["--drop", f"{TOPIC}:zero:1", "--force"], "TOPIC:PARTITION:OFFSET"),
        (["--drop", f"{TOPIC}:0:\u00b3", "--force"], "TOPIC:PARTITION:OFFSET"),
        (["--drop", f"{TOPIC}:\u00b9:1", "--force"], "TOPIC:PARTITION:OFFSET"),
        (["--drop", f"{TOPIC}:0:\u0663", "--force"], "TOPIC:PARTITION:OFFSET"),
        (["--drop", f"{TOPIC}:0:1", "--drop-all", "--force"], "not both"),
        (["--group", "hub-b.desk"], "hub-a's groups are hub-a.NAME"),
    ],
    ids=[
        "not-parked",
        "one-of-two-not-parked",
        "no-topic",
        "bad-partition",
        "superscript-offset",
        "superscript-partition",
        "arabic-indic-offset",
        "both",
        "group",
    ],
)
def test_a_mistake_is_one_line_on_stderr_and_drops_nothing(
    args: list[str], said: str, home: Path, tmp_path: Path, run_cli: Run
) -> None:
    path, _ = _parked(home, tmp_path, [1, 3])
    code, out, err = run_cli(["desk", "parked", "--as", PARTY, *args])
    assert code == 2
    assert out == ""
    assert said in err
    assert len(err.strip().splitlines()) == 1
    assert _left(path) == [1, 3]


def test_no_memory_here_is_refused_and_none_is_made(home: Path, run_cli: Run) -> None:
    code, _out, err = run_cli(["desk", "parked", "--as", PARTY])
    path = default_replay_file(DESK, home)
    assert code != 0
    assert err.startswith(f"accord: error: no replay memory at {path}: run this where")
    assert not path.exists()


@pytest.mark.parametrize("args", [[], ["--drop", f"{TOPIC}:0:1", "--force"]], ids=["list", "drop"])
def test_listing_or_dropping_forgets_no_sighting_of_the_subscribers_however_old(
    args: list[str], home: Path, tmp_path: Path, run_cli: Run
) -> None:
    """A subscriber keeping sightings longer than the default 400 days: a sighting 500 days
    old survives ``accord desk parked``, listing or dropping (it does not know the retention)."""
    path, _ = _parked(home, tmp_path, [1])
    long_ago = datetime.fromtimestamp(time.time() - 500 * 86400, UTC)
    memory = SqliteReplayMemory(
        path, group=DESK, retention=timedelta(days=1000), clock=lambda: long_ago
    )
    assert memory.admit(eid(9), topic=TOPIC, partition=0, offset=0)
    memory.close()
    code, _out, _err = run_cli(["desk", "parked", "--as", PARTY, *args])
    assert code == 0
    memory = SqliteReplayMemory(path, group=DESK, read_only=True)
    try:
        assert len(memory) == 1
    finally:
        memory.close()


def test_a_listing_writes_nothing_so_a_subscriber_writing_meanwhile_never_waits_on_it(
    home: Path, tmp_path: Path, run_cli: Run
) -> None:
    """The listing only reads: it is not held up by (nor holds up) a subscriber holding the
    file's write lock."""
    path, _ = _parked(home, tmp_path, [1])
    subscriber = sqlite3.connect(path, isolation_level=None)
    subscriber.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        code, out, err = run_cli(["desk", "parked", "--as", PARTY])
        assert time.monotonic() - started < 5
    finally:
        subscriber.execute("ROLLBACK")
        subscriber.close()
    assert (code, err) == (0, "")
    assert out.splitlines()[1].split()[:3] == [TOPIC, "0", "1"]


def test_a_drop_is_logged_and_said_only_once_the_file_is_free_again(
    home: Path, tmp_path: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A log or terminal that blocks must not hold the replay memory's write lock, which a
    running subscriber needs: each drop's log line is written after the transaction."""
    path, _ = _parked(home, tmp_path, [1, 3])
    free: list[bool] = []

    class Log:
        def error(self, event: str, **_: object) -> None:
            other = sqlite3.connect(path, timeout=0, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")
                other.execute("ROLLBACK")
                free.append(event == "parked_record_dropped")
            except sqlite3.OperationalError:
                free.append(False)
            finally:
                other.close()

    monkeypatch.setattr("broker.sdk._parked.log", Log())
    code, out, _err = run_cli(["desk", "parked", "--as", PARTY, "--drop-all", "--force"])
    assert code == 0
    assert out.splitlines() == [f"dropped {TOPIC}:0:1", f"dropped {TOPIC}:0:3"]
    assert free == [True, True]
