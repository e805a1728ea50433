"""A delivered record is named by the agency that sent its event and its event id: agencies
choose their ids, so two may reuse one, and each agency's record must reach the recipient.
A copy of either is still a replay, and a memory of format 1 (ids alone) is migrated."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from broker._canonical import canonical_json
from broker.envelope import Sealer
from broker.keys import FileKeyStore
from broker.sdk import Delivery
from broker.topics import SCHEMA_SHARED
from tests.unit.sdk.test_replay_memory import (
    EVENT,
    GROUP,
    T0,
    TOPIC,
    X25519,
    Msg,
    _close_memories,
    at,
    keys,
    memory,
    receive,
)

__all__ = ["_close_memories", "keys"]  # fixtures, used by name


def test_two_agencies_records_under_one_event_id_are_both_admitted() -> None:
    m = memory(":memory:")
    assert m.admit(EVENT, **at(0, 4), sender="wmp")
    assert m.admit(EVENT, **at(0, 5), sender="hv-sandwell")
    assert not m.admit(EVENT, **at(0, 9), sender="hv-sandwell")  # a copy of the second
    assert not m.admit(EVENT, **at(0, 9), sender="wmp")  # and of the first
    assert m.admit(EVENT, **at(0, 5), sender="hv-sandwell")  # uncommitted: a redelivery


def test_a_sighting_without_a_sender_stands_for_every_sender() -> None:
    m = memory(":memory:")
    assert m.admit(EVENT, **at(0, 4))
    assert not m.admit(EVENT, **at(0, 5), sender="wmp")
    assert m.admit("e2", **at(0, 6), sender="wmp")
    assert not m.admit("e2", **at(0, 7))


def _format_1(path: Path) -> None:
    """A memory as SDKs before senders were kept wrote it, with one sighting."""
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
        CREATE TABLE opened (
            event_id TEXT PRIMARY KEY, topic TEXT NOT NULL, kafka_partition INTEGER NOT NULL,
            kafka_offset INTEGER NOT NULL, first_opened REAL NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX opened_by_age ON opened (first_opened);
        CREATE TABLE committed (
            topic TEXT NOT NULL, kafka_partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
            PRIMARY KEY (topic, kafka_partition)
        ) WITHOUT ROWID;
        """
    )
    conn.executemany(
        "INSERT INTO meta VALUES (?, ?)", [("format", "accord-replay-memory"), ("group", GROUP)]
    )
    conn.execute("INSERT INTO opened VALUES (?, ?, 0, 4, ?)", (EVENT, TOPIC, T0.timestamp()))
    conn.execute("INSERT INTO committed VALUES (?, 0, 5)", (TOPIC,))
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()


def test_a_format_1_memory_is_migrated_keeping_its_sightings(tmp_path: Path) -> None:
    path = tmp_path / "replay.sqlite3"
    _format_1(path)
    m = memory(path)
    assert len(m) == 1
    # Its sender was never kept: a copy of it, whoever it names, is still refused.
    assert not m.admit(EVENT, **at(0, 4), sender="wmp")  # committed before the upgrade
    assert not m.admit(EVENT, **at(0, 9), sender="wmp")
    assert m.admit("e2", **at(0, 6), sender="wmp")
    assert m.admit("e2", **at(0, 7), sender="hv-sandwell")
    m.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
        rows = conn.execute("SELECT sender, event_id FROM opened ORDER BY event_id, sender")
        assert rows.fetchall() == [
            ("", EVENT), ("hv-sandwell", "e2"), ("wmp", "e2")
        ]  # fmt: skip
        indexes = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()
        assert ("opened_by_age",) in indexes
    finally:
        conn.close()
    assert len(memory(path)) == 3  # opened again: format 3 as it is


def test_a_format_1_memory_can_be_read_only_without_being_changed(tmp_path: Path) -> None:
    path = tmp_path / "replay.sqlite3"
    _format_1(path)
    m = memory(path, read_only=True)
    assert m.parked_entries() == []
    m.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    finally:
        conn.close()


def delivery_from(keys: FileKeyStore, sender: str, partition: int, offset: int) -> Msg:
    """A record the broker sealed delivering ``sender``'s event ``EVENT``."""
    delivery = Delivery(
        event_id=EVENT, recipient="hub-a", outcome="shared", clauses=("c",),
        agreements=("a",), purpose="early_help", lawful_basis={"article6": "public_task"},
        policy_version="v", decided_at=T0,
        view={"event_id": EVENT, "sender": sender, "type": "contact"},
    )  # fmt: skip
    record = Sealer("worker", keys, X25519).seal(
        canonical_json(delivery.model_dump(mode="json")), event_id=EVENT,
        recipient="hub-a", schema=SCHEMA_SHARED, topic=TOPIC,
    )  # fmt: skip
    return Msg(partition, offset, record.value, list(record.headers))


async def test_a_subscriber_yields_two_agencies_events_under_one_id_and_refuses_copies(
    keys: FileKeyStore, tmp_path: Path
) -> None:
    file = tmp_path / "replay.sqlite3"
    wmp, hv = delivery_from(keys, "wmp", 0, 4), delivery_from(keys, "hv-sandwell", 0, 5)
    got, refused = await receive(keys, [wmp, hv], file)
    assert (got, refused) == ([EVENT, EVENT], [])
    copies: list[Any] = [Msg(0, 8, wmp.value, wmp.headers), Msg(0, 9, hv.value, hv.headers)]
    assert await receive(keys, copies, file) == ([], [(0, 8, "replay"), (0, 9, "replay")])
