"""A recipient's replay memory: what it has opened, where, remembered across restarts.

The memory on its own first, then a subscriber using it (with a fake Kafka that hands over
the records a test chooses, at the positions it chooses), then ``accord tail`` when the memory
cannot be used.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from broker._canonical import canonical_json
from broker.config import EnvelopeSettings, KafkaSettings, KemSuite
from broker.devkafka import free_port
from broker.envelope import Sealer
from broker.errors import ConfigError
from broker.kafka import KafkaClients, TopicPartition
from broker.keys import FileKeyStore
from broker.sdk import (
    DEFAULT_REPLAY_RETENTION,
    Delivery,
    SqliteReplayMemory,
    Subscriber,
    default_replay_file,
)
from broker.topics import SCHEMA_SHARED, deliver

TOPIC = deliver("hub-a")
GROUP = "hub-a.cases"
T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
X25519 = EnvelopeSettings(kem=KemSuite.X25519)  # the keystore's KEM: its keys are quick to make
EVENT = "0b7c4a1e-5f3d-4c2a-9e8b-000000000001"


class Clock:
    def __init__(self, at: datetime = T0) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


_OPEN: list[SqliteReplayMemory] = []


@pytest.fixture(autouse=True)
def _close_memories() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def memory(path: Path | str, clock: Clock | None = None, **kw: Any) -> SqliteReplayMemory:
    m = SqliteReplayMemory(path, group=GROUP, clock=clock or Clock(), **kw)
    _OPEN.append(m)
    return m


def at(partition: int, offset: int) -> dict[str, Any]:
    return {"topic": TOPIC, "partition": partition, "offset": offset}


# -- the memory ---------------------------------------------------------------------------


def test_a_record_coming_again_at_its_first_uncommitted_position_is_admitted_again() -> None:
    m = memory(":memory:")
    assert m.admit(EVENT, **at(1, 7))
    # The process stopped before committing offset 7: Kafka hands the same record over again.
    assert m.admit(EVENT, **at(1, 7))
    assert m.admit(EVENT, **at(1, 7))


@pytest.mark.parametrize("elsewhere", [at(1, 8), at(0, 7), {**at(1, 7), "topic": "other"}])
def test_a_copy_at_any_other_position_is_refused(elsewhere: dict[str, Any]) -> None:
    m = memory(":memory:")
    assert m.admit(EVENT, **at(1, 7))
    assert not m.admit(EVENT, **elsewhere)
    assert m.admit(EVENT, **at(1, 7))  # the copy did not displace the first sighting


def test_a_record_whose_offset_was_committed_is_refused_when_the_group_rewinds() -> None:
    m = memory(":memory:")
    assert m.admit(EVENT, **at(1, 7))
    m.committed(TOPIC, 1, 8)
    # Offsets reset by an administrator, or expired while the recipient was away: the same
    # record at the same position, but it was handled already.
    assert not m.admit(EVENT, **at(1, 7))
    m.committed(TOPIC, 1, 0)  # the rewind itself does not lower the mark
    assert not m.admit(EVENT, **at(1, 7))


def test_a_commit_of_another_partition_does_not_refuse_a_redelivery() -> None:
    m = memory(":memory:")
    assert m.admit(EVENT, **at(1, 7))
    m.committed(TOPIC, 0, 100)
    m.committed(TOPIC, 1, 7)  # committed up to, not including, offset 7
    assert m.admit(EVENT, **at(1, 7))


def test_a_rewind_on_purpose_admits_records_again_at_their_own_position_only() -> None:
    m = memory(":memory:")
    assert m.admit(EVENT, **at(1, 7))
    m.committed(TOPIC, 1, 8)
    m.rewound(TOPIC, 1, 0)  # accord desk reset-offsets: the group set back to offset 0
    assert m.admit(EVENT, **at(1, 7))  # handed over again where it was first opened
    assert not m.admit(EVENT, **at(1, 9))  # a copy elsewhere is still a replay
    m.rewound(TOPIC, 1, 20)  # never raises a mark
    assert m.admit(EVENT, **at(1, 7))


def test_after_kafka_is_restored_older_a_new_records_redelivery_needs_the_marks_set_back() -> None:
    """Kafka restored to offset 50 while the memory had committed to 80: new records take
    offsets from 50, below the stale mark, so a crash's redelivery of one is refused until
    the marks are set back (reset-offsets: to the earliest offset, below the new end)."""
    m = memory(":memory:")
    m.committed(TOPIC, 0, 80)
    assert m.admit("new-after-restore", **at(0, 55))  # a first sighting is always opened
    assert not m.admit("new-after-restore", **at(0, 55))  # its redelivery: refused, lost
    m.rewound(TOPIC, 0, 0)
    assert m.admit("new-after-restore", **at(0, 55))


def test_what_was_opened_survives_closing_and_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "replay.sqlite3"
    first = memory(path)
    assert first.admit(EVENT, **at(1, 7))
    assert first.admit("e2", **at(2, 3))
    first.committed(TOPIC, 2, 4)
    first.close()

    again = memory(path)
    assert len(again) == 2
    assert again.admit(EVENT, **at(1, 7))  # uncommitted: a redelivery
    assert not again.admit(EVENT, **at(1, 9))  # a copy
    assert not again.admit("e2", **at(2, 3))  # committed before the restart
    assert again.admit("e3", **at(1, 8))


def test_sightings_older_than_the_retention_are_pruned_when_the_memory_opens(
    tmp_path: Path,
) -> None:
    path = tmp_path / "replay.sqlite3"
    clock = Clock()
    m = memory(path, clock, retention=timedelta(days=30))
    assert m.admit("old", **at(0, 1))
    clock.at = T0 + timedelta(days=20)
    assert m.admit("recent", **at(0, 2))
    m.close()

    clock.at = T0 + timedelta(days=30, seconds=1)
    m = memory(path, clock, retention=timedelta(days=30))
    assert len(m) == 1
    assert m.admit("old", **at(0, 5))  # forgotten: a copy of it is no longer recognised
    assert not m.admit("recent", **at(0, 6))


def test_a_long_running_memory_prunes_as_it_goes() -> None:
    clock = Clock()
    m = memory(":memory:", clock, retention=timedelta(days=30))
    assert m.admit("old", **at(0, 1))
    clock.at = T0 + timedelta(days=31)
    assert m.admit("new", **at(0, 2))
    assert len(m) == 1


def test_the_default_retention_outlasts_the_delivery_topics() -> None:
    from broker.kafka import accord_topics

    [spec] = [s for s in accord_topics([], ["hub-a"], KafkaSettings()) if s.name == TOPIC]
    topic_days = int(spec.config["retention.ms"]) / (24 * 3600 * 1000)
    assert timedelta(days=topic_days) * 10 < DEFAULT_REPLAY_RETENTION


def test_the_file_and_its_journal_are_readable_by_the_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "home" / "sdk" / "replay.sqlite3"
    m = memory(path)
    assert m.admit(EVENT, **at(1, 7))
    files = [path, path.with_name(path.name + "-wal")]
    assert [stat.S_IMODE(f.stat().st_mode) for f in files] == [0o600, 0o600]
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_an_existing_file_open_to_others_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "replay.sqlite3"
    memory(path).close()
    path.chmod(0o666)
    memory(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_existing_memorys_wal_and_shm_open_to_others_are_made_private_with_a_warning(
    tmp_path: Path,
) -> None:
    from structlog.testing import capture_logs

    path = tmp_path / "replay.sqlite3"
    memory(path).close()
    sidecars = [Path(f"{path}{suffix}") for suffix in ("-wal", "-shm")]
    for name in sidecars:
        name.touch()
        name.chmod(0o644)
    with capture_logs() as logs:
        memory(path).close()
    [warning] = [e for e in logs if e["event"] == "replay_memory_made_private"]
    assert warning["paths"] == [str(name) for name in sidecars]
    assert all(stat.S_IMODE(n.stat().st_mode) == 0o600 for n in sidecars if n.exists())


def test_only_event_ids_positions_and_parked_sealed_records_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "replay.sqlite3"
    m = memory(path)
    assert m.admit(EVENT, **at(1, 7))
    m.close()
    conn = sqlite3.connect(path)
    try:
        columns = {
            (table, row[1])
            for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            for row in conn.execute(f"PRAGMA table_info({table})")
        }
    finally:
        conn.close()
    assert columns == {
        ("meta", "key"), ("meta", "value"),
        ("opened", "sender"), ("opened", "event_id"), ("opened", "topic"),
        ("opened", "kafka_partition"), ("opened", "kafka_offset"), ("opened", "first_opened"),
        ("committed", "topic"), ("committed", "kafka_partition"), ("committed", "next_offset"),
        ("parked", "topic"), ("parked", "kafka_partition"), ("parked", "kafka_offset"),
        ("parked", "parked_at"), ("parked", "kafka_timestamp"), ("parked", "kafka_key"),
        ("parked", "value"), ("parked", "headers"),
    }  # fmt: skip


def test_a_file_that_is_not_a_database_is_a_config_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "replay.sqlite3"
    path.write_bytes(b"this is not SQLite " * 100)
    with pytest.raises(ConfigError, match=f"replay memory {path} cannot be used"):
        memory(path)


def test_another_programs_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "theirs.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (n TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError, match="another program's database"):
        memory(path)


def test_a_file_that_cannot_be_created_is_a_config_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("")
    path = tmp_path / "not-a-dir" / "replay.sqlite3"
    with pytest.raises(ConfigError, match=f"replay memory {path} cannot be opened"):
        memory(path)


def test_a_symbolic_link_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").write_text("")
    (tmp_path / "replay.sqlite3").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match="cannot be opened"):
        memory(tmp_path / "replay.sqlite3")


def test_another_groups_memory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "replay.sqlite3"
    memory(path).close()
    with pytest.raises(ConfigError, match=r"belongs to consumer group hub-a\.cases, not hub-a\.x"):
        SqliteReplayMemory(path, group="hub-a.x")


def test_the_default_file_is_per_group_under_the_accord_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    assert default_replay_file("hub-a.cases") == tmp_path / "sdk" / "replay-hub-a.cases.sqlite3"
    # Any group name is one file name inside that folder.
    assert default_replay_file("hub-a./../x").parent == tmp_path / "sdk"


# -- a subscriber using it ------------------------------------------------------------------


@dataclass
class Msg:
    partition: int
    offset: int
    value: bytes | None
    headers: list[tuple[str, bytes]]
    topic: str = TOPIC
    key: bytes | None = None
    timestamp: int = 0


@dataclass
class FakeConsumer:
    """Hands over ``pending`` in one batch; ``commit`` counts as the group's commit."""

    pending: list[Msg]
    commits: list[int] = field(default_factory=list)

    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    async def getmany(self, timeout_ms: int = 0) -> dict[TopicPartition, list[Msg]]:  # noqa: ARG002  # the seam's signature
        batch: dict[TopicPartition, list[Msg]] = {}
        for m in self.pending:
            batch.setdefault(TopicPartition(m.topic, m.partition), []).append(m)
        self.pending = []
        return batch

    async def commit(self) -> None:
        self.commits.append(1)


class FakeKafka(KafkaClients):
    def __init__(self, records: Iterable[Msg]) -> None:
        super().__init__(KafkaSettings(bootstrap="127.0.0.1:1"))
        self.fake = FakeConsumer(list(records))

    def consumer(self, *topics: str, **kw: Any) -> Any:  # noqa: ARG002  # the seam's signature
        return self.fake

    def producer(self, client_id: str, **kw: Any) -> Any:  # noqa: ARG002  # the seam's signature
        return FakeConsumer([])  # start and stop are all a subscriber asks of it here


@pytest.fixture
def keys(tmp_path: Path) -> FileKeyStore:
    store = FileKeyStore(tmp_path / "keys", create=True)
    for party in ("worker", "hub-a", "wmp"):
        store.ensure_party(party, kem=KemSuite.X25519)
    return store


def sealed(
    keys: FileKeyStore, event_id: str, partition: int, offset: int, sender: str = "worker"
) -> Msg:
    delivery = Delivery(
        event_id=event_id, recipient="hub-a", outcome="shared", clauses=("c",),
        agreements=("a",), purpose="early_help", lawful_basis={"article6": "public_task"},
        policy_version="v", decided_at=T0, view={"event.need_level": 3},
    )  # fmt: skip
    record = Sealer(sender, keys, X25519).seal(
        canonical_json(delivery.model_dump(mode="json")), event_id=event_id,
        recipient="hub-a", schema=SCHEMA_SHARED, topic=TOPIC,
    )  # fmt: skip
    return Msg(partition, offset, record.value, list(record.headers))


async def receive(
    keys: FileKeyStore, records: list[Msg], replay_memory: Path | None
) -> tuple[list[str], list[tuple[int, int, str]]]:
    """What one run of a subscriber yields (event ids) and reports (position, reason)."""
    kafka = FakeKafka(records)
    async with Subscriber(
        "hub-a", keys, kafka, GROUP, replay_memory=replay_memory, envelope=X25519
    ) as sub:
        got = await sub.poll(0)
    ids = [r.message.event_id for r in got]  # type: ignore[union-attr]
    return ids, [(u.partition, u.offset, u.reason) for u in sub.unopenable]


async def test_a_restarted_subscriber_reports_a_copy_of_a_record_it_opened_as_a_replay(
    keys: FileKeyStore, tmp_path: Path
) -> None:
    file = tmp_path / "replay.sqlite3"
    original = sealed(keys, EVENT, 0, 4)
    assert await receive(keys, [original], file) == ([EVENT], [])
    copy = Msg(0, 9, original.value, original.headers)  # byte for byte, written again
    assert await receive(keys, [copy], file) == ([], [(0, 9, "replay")])


async def test_a_record_another_party_sealed_cannot_use_up_the_brokers_event_id(
    keys: FileKeyStore, tmp_path: Path
) -> None:
    """Only the broker's records reach the memory: an agency's record under the same event id,
    ahead of the broker's on the topic, is refused without taking the id."""
    forged = sealed(keys, EVENT, 0, 3, sender="wmp")
    genuine = sealed(keys, EVENT, 0, 4)
    ids, refused = await receive(keys, [forged, genuine], tmp_path / "replay.sqlite3")
    assert ids == [EVENT]
    assert [(p, o) for p, o, _ in refused] == [(0, 3)]
    assert refused[0][2] != "replay"


async def test_a_restarted_subscriber_yields_again_a_record_it_never_committed(
    keys: FileKeyStore, tmp_path: Path
) -> None:
    file = tmp_path / "replay.sqlite3"
    record = sealed(keys, EVENT, 0, 4)
    # Opened, then the process died before the commit: only the memory saw it.
    m = memory(file)
    assert m.admit(EVENT, **at(0, 4))
    m.close()
    assert await receive(keys, [record], file) == ([EVENT], [])
    # This time it was committed: handing it over again is a rewind, not a redelivery.
    assert await receive(keys, [record], file) == ([], [(0, 4, "replay")])


async def test_a_batch_polled_without_commit_comes_again_after_a_restart_until_committed(
    keys: FileKeyStore, tmp_path: Path
) -> None:
    """poll(commit=False): a crash before commit() delivers the batch again (the desk stores
    before it commits); once committed, the same record again is a replay."""
    file = tmp_path / "replay.sqlite3"
    record = sealed(keys, EVENT, 0, 4)

    async def run(*, commit: bool) -> tuple[list[str], list[str]]:
        async with Subscriber(
            "hub-a", keys, FakeKafka([record]), GROUP, replay_memory=file, envelope=X25519
        ) as sub:
            got = await sub.poll(0, commit=False)
            if commit:
                await sub.commit()
        return [r.message.event_id for r in got], [u.reason for u in sub.unopenable]  # type: ignore[union-attr]

    assert await run(commit=False) == ([EVENT], [])
    assert await run(commit=False) == ([EVENT], [])  # never committed: yielded again
    assert await run(commit=True) == ([EVENT], [])
    assert await run(commit=False) == ([], ["replay"])


async def test_without_a_memory_file_a_subscriber_forgets_at_restart_and_says_so(
    keys: FileKeyStore,
) -> None:
    copy = sealed(keys, EVENT, 0, 4)
    with capture_logs() as logs:
        first = await receive(keys, [copy], None)
        second = await receive(keys, [Msg(0, 9, copy.value, copy.headers)], None)
    assert first == second == ([EVENT], [])
    warnings = [e for e in logs if e["event"] == "replay_memory_in_memory_only"]
    assert len(warnings) == 2  # once per start
    assert warnings[0]["log_level"] == "warning"


async def test_by_default_a_subscriber_remembers_in_a_file_under_the_accord_home(
    keys: FileKeyStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path / "home"))
    async with Subscriber(
        "hub-a", keys, FakeKafka([sealed(keys, EVENT, 0, 4)]), GROUP, envelope=X25519
    ) as sub:
        assert [r.message.event_id for r in await sub.poll(0)] == [EVENT]  # type: ignore[union-attr]
    file = tmp_path / "home" / "sdk" / f"replay-{GROUP}.sqlite3"
    assert len(memory(file)) == 1


async def test_an_unusable_memory_file_stops_the_subscriber_before_kafka(
    keys: FileKeyStore, tmp_path: Path
) -> None:
    file = tmp_path / "replay.sqlite3"
    file.write_bytes(b"garbage" * 200)
    kafka = FakeKafka([])
    with pytest.raises(ConfigError, match=f"replay memory {file}"):
        async with Subscriber("hub-a", keys, kafka, GROUP, replay_memory=file, envelope=X25519):
            pass
    assert kafka.fake.commits == []


def test_accord_tail_with_an_unusable_memory_says_so_in_one_line(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "parties.yaml").write_text("parties:\n  hub-a: {name: Hub, kind: hub}\n")
    env = dict(os.environ, ACCORD_HOME=str(tmp_path / "home"),
               ACCORD_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}",
               ACCORD_KAFKA__USERNAME="hub-a", ACCORD_KAFKA__PASSWORD="pw")  # fmt: skip
    init = [sys.executable, "-m", "broker", "keys", "init", "--policies", str(bundle)]
    subprocess.run(init, env=env, check=True, capture_output=True)
    file = default_replay_file("hub-a.tail", tmp_path / "home")
    file.parent.mkdir(parents=True)
    file.write_bytes(b"garbage" * 200)
    file.chmod(0o600)  # or it is made private first, with a warning line of its own
    done = subprocess.run(
        [sys.executable, "-m", "broker", "tail", "--as", "hub-a"], env=env, capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"accord: error: replay memory {file} cannot be used: file is not a database"
    ]


def test_opening_the_memory_again_keeps_this_process_s_locks_on_it(tmp_path: Path) -> None:
    """Opening and closing a descriptor of the file (to create it, or make it private) would
    drop the locks this process's other connections to it hold: another process's last close
    could then take the file for unused and remove the write-ahead log under them."""
    import subprocess
    import sys

    from broker.sdk._replay_file import create_private

    path = tmp_path / "replay.sqlite3"
    memory(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    # SQLite's shared-lock bytes on the database file (os_unix.c: SHARED_FIRST, SHARED_SIZE).
    probe = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "try:\n    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 510, 0x40000002)\n"
        "except OSError:\n    print('held')\nelse:\n    print('free')\n"
    )
    argv = [sys.executable, "-c", probe, str(path)]
    try:
        holder.execute("BEGIN")
        holder.execute("SELECT count(*) FROM sqlite_master").fetchall()
        assert subprocess.run(argv, capture_output=True, text=True, check=True).stdout == "held\n"
        create_private(path)  # what a second memory on the same file does first
        assert subprocess.run(argv, capture_output=True, text=True, check=True).stdout == "held\n"
    finally:
        holder.close()


@pytest.mark.parametrize("planted", ["", "-wal", "-shm"])
def test_a_file_of_another_account_already_there_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, planted: str
) -> None:
    """Review s43r2, s43r5: made first by another account in a shared folder, 0666, the
    memory's file, its -wal or its -shm was used: that account could read the memory and
    delete its rows, defeating the replay check."""
    path = tmp_path / "replay.sqlite3"
    foreign = Path(f"{path}{planted}")
    foreign.write_bytes(b"")
    foreign.chmod(0o666)
    someone_else = os.geteuid() + 1
    real_lstat = os.lstat

    def lstat(name: str | os.PathLike[str], **kwargs: Any) -> os.stat_result:
        st = real_lstat(name, **kwargs)
        if os.fspath(name) == str(foreign):  # the one file another account made
            return os.stat_result((*st[:4], someone_else, *st[5:]))
        return st

    monkeypatch.setattr(os, "lstat", lstat)
    with pytest.raises(ConfigError, match="cannot be opened: it belongs to another account"):
        memory(path)
    monkeypatch.undo()
    assert stat.S_IMODE(foreign.stat().st_mode) == 0o666
