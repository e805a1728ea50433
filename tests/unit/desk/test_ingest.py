"""Filling the store from one poll: deliveries once each, notices hiding at once, and the
desk acknowledging nothing by itself (only people's views are acknowledged)."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from broker.desk import DeskIngest, DeskStore, children_in
from broker.desk._ingest_held import HELD_METRIC, PARKED_METRIC, DeliveriesHeld
from broker.errors import ConfigError, RecordKeyUnavailable
from broker.events import Delivery, WithdrawalNotice
from tests.unit.desk.conftest import SECRET, Clock, delivery


@dataclass
class Shared:
    message: Delivery | WithdrawalNotice


class FakeSubscriber:
    def __init__(self) -> None:
        self.batches: list[list[Shared]] = []
        self.acks: list[Any] = []
        self.commits = 0
        self.uncommitted = False
        self.parked = 0

    async def poll(self, wait: float, *, commit: bool = True) -> list[Shared]:
        del wait
        batch = self.batches.pop(0) if self.batches else []
        self.uncommitted = not commit
        if commit:
            self.commits += 1
        return batch

    async def commit(self) -> None:
        self.commits += 1
        self.uncommitted = False

    async def acknowledge(self, *args: Any, **kwargs: Any) -> None:
        self.acks.append((args, kwargs))


def notice(*event_ids: str) -> WithdrawalNotice:
    return WithdrawalNotice(
        notice_id="n-1", recipient="sandwell-coord", event_ids=event_ids,
        purposes=("early_help",), withdrawn_at=datetime(2026, 11, 24, 9, 0, tzinfo=UTC),
    )  # fmt: skip


async def test_a_redelivered_record_is_stored_once_and_a_notice_hides_within_one_poll(
    store: DeskStore, clock: Clock
) -> None:
    sub = FakeSubscriber()
    ingest = DeskIngest(store, sub, linkage_key=SECRET, clock=clock)  # type: ignore[arg-type]  # the fake
    sub.batches = [
        [Shared(delivery("e1")), Shared(delivery("e2")), Shared(delivery("e1"))],
        [Shared(notice("e1"))],
    ]
    assert await ingest.poll_once(0) == 2
    [child] = children_in(delivery("e1").view, SECRET)
    assert [r.event_id for r in store.records_about(child)] == ["e1", "e2"]
    assert await ingest.poll_once(0) == 1  # the very next poll hides it
    hidden = store.record("e1")
    assert hidden is not None
    assert hidden.hidden
    assert hidden.hidden_reason == (
        "Consent withdrawn for early help on 2026-11-24 09:00 GMT: stop using this record."
    )
    assert sub.acks == []  # software opens nothing: only a person's view is acknowledged


def test_children_are_the_child_subjects_or_everyone_when_no_roles_travel() -> None:
    with_roles = {"subjects": [
        {"role": "parent", "given_name": "A", "family_name": "B", "dob": "1990-01-01"},
        {"role": "child", "nhs_number": "9993080233"},
    ]}  # fmt: skip
    without_roles = {"subjects": [{"given_name": "A", "family_name": "B", "dob": "2016-01-01"}]}
    assert len(children_in(with_roles, SECRET)) == 1
    assert len(children_in(without_roles, SECRET)) == 1
    assert children_in({"subjects": [{"given_name": "A"}]}, SECRET) == []  # cannot be keyed


async def test_a_batch_is_committed_only_once_stored_so_a_failing_store_loses_nothing(
    store: DeskStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK's poll committed before the desk stored: a crash or a store error in between
    lost the record (and the replay memory then refused it when it came again)."""
    sub = FakeSubscriber()
    ingest = DeskIngest(store, sub, linkage_key=SECRET, clock=clock)  # type: ignore[arg-type]  # the fake
    sub.batches = [[Shared(delivery("e1"))]]

    def broken(*_: Any, **__: Any) -> int:
        raise RuntimeError("disk full")

    monkeypatch.setattr(store, "add_delivery", broken)
    with pytest.raises(RuntimeError):
        await ingest.poll_once(0)
    assert sub.commits == 0
    assert sub.uncommitted  # delivered again at the next start

    monkeypatch.undo()
    sub.batches = [[Shared(delivery("e1"))]]
    assert await ingest.poll_once(0) == 1
    assert (sub.commits, sub.uncommitted) == (1, False)


def _held_error() -> RecordKeyUnavailable:
    return RecordKeyUnavailable(
        "accord.deliver.sandwell-coord partition 0 offset 7 cannot be opened with this "
        "keystore: restore the keystore from its backup",
        topic="accord.deliver.sandwell-coord", partition=0, offset=7, key_id="ab" * 8,
    )  # fmt: skip


class FakeFlags:
    """The flags consumer: counts its polls."""

    def __init__(self) -> None:
        self.polls = 0
        self.fifth = asyncio.Event()

    async def getmany(self, timeout_ms: int = 0) -> dict[Any, Any]:  # noqa: ARG002  # the seam's signature
        self.polls += 1
        if self.polls == 5:
            self.fifth.set()
        return {}


class FakeContact:
    def __init__(self) -> None:
        self.checks = 0

    async def check(self) -> bool:
        self.checks += 1
        return True


async def test_a_record_the_keystore_cannot_open_holds_the_desk_with_one_line_until_it_opens(
    store: DeskStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No crash loop (a restart stops on the same record): one error line naming the
    record and the fix, the gauge at 1 meanwhile, and reading resumes once the keys are
    there."""
    monkeypatch.setattr("broker.desk._ingest.HELD_RETRY_SECONDS", 0.01)
    registry = CollectorRegistry()
    held = DeliveriesHeld(registry)
    sub = FakeSubscriber()
    ingest = DeskIngest(store, sub, linkage_key=SECRET, clock=clock, held=held)  # type: ignore[arg-type]  # the fake
    stop = asyncio.Event()
    polls: list[tuple[bool, float | None]] = []  # whether each poll found it held; the gauge
    fixed_after = 3

    async def poll(wait: float, *, commit: bool = True) -> list[Shared]:
        del wait, commit
        polls.append((ingest.is_held(), registry.get_sample_value(HELD_METRIC)))
        if len(polls) <= fixed_after:
            raise _held_error()
        if len(polls) == fixed_after + 1:
            return [Shared(delivery("e1"))]
        stop.set()
        return []

    monkeypatch.setattr(sub, "poll", poll)
    with capture_logs() as logs:
        await asyncio.wait_for(ingest.run(stop, interval=0.01), timeout=5)
    assert polls[:5] == [(False, 0), (True, 1), (True, 1), (True, 1), (False, 0)]
    lines = [e for e in logs if e["event"].startswith("desk_ingest")]
    assert [(e["event"], e["log_level"]) for e in lines] == [
        ("desk_ingest_held", "error"),
        ("desk_ingest_resumed", "info"),
    ]
    assert "offset 7" in lines[0]["why"]
    assert store.record("e1") is not None


async def test_a_held_desk_still_reads_its_flags_and_asks_kafka_and_tries_the_record_seldom(
    store: DeskStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Held on one delivery, the team's flags still arrive and Kafka's answers are still
    recorded (else AccordDeskKafkaUnreachable blames Kafka); the record is tried again only
    every HELD_RETRY_SECONDS."""
    monkeypatch.setattr("broker.desk._ingest.HELD_RETRY_SECONDS", 3600)
    sub, flags, contact = FakeSubscriber(), FakeFlags(), FakeContact()
    ingest = DeskIngest(
        store, sub, linkage_key=SECRET, clock=clock,  # type: ignore[arg-type]  # the fakes
        flags=flags, contact=contact,  # type: ignore[arg-type]
    )  # fmt: skip
    tries = 0

    async def poll(wait: float, *, commit: bool = True) -> list[Shared]:
        nonlocal tries
        del wait, commit
        tries += 1
        raise _held_error()

    monkeypatch.setattr(sub, "poll", poll)
    stop = asyncio.Event()
    task = asyncio.create_task(ingest.run(stop, interval=0.01))
    await asyncio.wait_for(flags.fifth.wait(), timeout=5)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert ingest.is_held()
    assert tries == 1
    assert contact.checks >= 5


async def test_the_ops_gauge_counts_the_deliveries_the_subscriber_has_parked(
    store: DeskStore, clock: Clock
) -> None:
    """accord_desk_deliveries_parked follows the SDK's count after each delivery poll."""
    registry = CollectorRegistry()
    held = DeliveriesHeld(registry)
    sub = FakeSubscriber()
    ingest = DeskIngest(store, sub, linkage_key=SECRET, clock=clock, held=held)  # type: ignore[arg-type]  # the fake
    assert registry.get_sample_value(PARKED_METRIC) == 0
    sub.parked = 2
    await ingest.poll_once(0)
    assert (registry.get_sample_value(PARKED_METRIC), held.parked) == (2, 2)
    sub.parked = 0
    await ingest.poll_once(0)
    assert registry.get_sample_value(PARKED_METRIC) == 0


def _replay_memory_error(tmp_path: Path, *, busy: bool) -> ConfigError:
    """The error the SDK's replay memory raises: for ``busy``, another process held its write
    lock past the timeout; else a file it cannot use at all."""
    path = tmp_path / "replay.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE IF NOT EXISTS t (a)")
    if busy:
        holder.execute("BEGIN IMMEDIATE")
    try:
        waiting = sqlite3.connect(path, timeout=0, isolation_level=None)
        statement = "BEGIN IMMEDIATE" if busy else "SELECT * FROM missing"
        try:
            waiting.execute(statement)
        except sqlite3.Error as exc:
            translated = ConfigError(f"replay memory {path} cannot be written: {exc}")
            translated.__cause__ = exc  # as the SDK's ``raise ... from exc``
            return translated
        finally:
            waiting.close()
    finally:
        holder.close()
    raise AssertionError


async def test_a_replay_memory_busy_for_a_while_is_waited_out_not_the_end_of_the_desk(
    store: DeskStore, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator's drop (or another process sharing the replay memory) holding it past the
    timeout: one warning, and the desk reads on (the subscriber reads the batch again)."""
    sub = FakeSubscriber()
    ingest = DeskIngest(store, sub, linkage_key=SECRET, clock=clock)  # type: ignore[arg-type]  # the fake
    stop = asyncio.Event()
    polls = 0

    async def poll(wait: float, *, commit: bool = True) -> list[Shared]:
        nonlocal polls
        del wait, commit
        polls += 1
        if polls == 1:
            raise _replay_memory_error(tmp_path, busy=True)
        stop.set()
        return [Shared(delivery("e1"))]

    monkeypatch.setattr(sub, "poll", poll)
    with capture_logs() as logs:
        await asyncio.wait_for(ingest.run(stop, interval=0.01), timeout=5)
    assert [e["event"] for e in logs if e["event"].startswith("desk_ingest")] == [
        "desk_ingest_replay_memory_busy"
    ]
    assert store.record("e1") is not None


async def test_a_replay_memory_that_cannot_be_used_still_ends_the_desk_with_its_reason(
    store: DeskStore, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = FakeSubscriber()
    ingest = DeskIngest(store, sub, linkage_key=SECRET, clock=clock)  # type: ignore[arg-type]  # the fake

    async def poll(wait: float, *, commit: bool = True) -> list[Shared]:
        del wait, commit
        raise _replay_memory_error(tmp_path, busy=False)

    monkeypatch.setattr(sub, "poll", poll)
    with pytest.raises(ConfigError, match="no such table"):
        await asyncio.wait_for(ingest.run(asyncio.Event(), interval=0.01), timeout=5)


async def test_the_desks_stop_does_not_wait_for_its_flags_consumer_to_finish_closing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A consumer's close over TLS can wait 30 s for a broker that never answers its
    close_notify; a pod's stop has 30 s in all. Its offsets were committed as each batch was
    stored, so nothing waits on the close."""
    from broker.desk._ingest import stop_consumer
    from broker.kafka import _errors

    monkeypatch.setattr(_errors, "CLOSE_WAIT_S", 0.05)
    closing = asyncio.Event()

    class _SlowToClose:
        async def stop(self) -> None:
            closing.set()
            await asyncio.Event().wait()

    await asyncio.wait_for(stop_consumer(_SlowToClose()), timeout=2)  # type: ignore[arg-type]
    assert closing.is_set()  # begun, and left to finish in the background
