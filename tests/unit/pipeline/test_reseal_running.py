"""A running worker that picks up a new encryption key seals its consent state again to it,
with no restart: revoking the old key then loses no consent."""

from __future__ import annotations

import asyncio
import shutil
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from broker.audit import ChainWriter
from broker.config import KemSuite
from broker.kafka import TopicPartition
from broker.keys import FileKeyStore
from broker.pipeline._effects import OutRecord
from broker.pipeline._keywatch import follow_keys
from broker.pipeline._loop import TransactionalLoop
from broker.pipeline._metrics import Metrics
from broker.pipeline._processor import Processor, build_processor
from broker.pipeline._reseal import Reseals
from broker.pipeline._restore import EntryReader
from broker.pipeline._state import TaskId, WorkerState
from broker.pipeline._tasks import Batch
from broker.policy import Policy
from broker.topics import CONSENT, STATE, deliver, ingress
from tests.unit.pipeline.conftest import AT, ENVELOPE
from tests.unit.pipeline.test_loop import AT_LOOP, _Clients, _Consumer, _Producer
from tests.unit.pipeline.test_processor import Run, incident, seal_as
from tests.unit.pipeline.test_restore import LINKAGE, _read, genuine  # fixture

__all__ = ["genuine"]

CONSENT_0 = TopicPartition(CONSENT, 0)


def _copy(keys: FileKeyStore, tmp_path: Path) -> FileKeyStore:
    shutil.copytree(keys.path, tmp_path / "keys")
    return FileKeyStore(tmp_path / "keys")


def _processor(keys: FileKeyStore, policy: Policy, state: WorkerState) -> Processor:
    return build_processor(
        policy=policy,
        keys=keys,
        linkage_key=LINKAGE,
        state=state,
        chain=ChainWriter(state.task.chain, clock=lambda: AT),
        clock=lambda: AT,
        envelope=ENVELOPE,
        metrics=Metrics(CollectorRegistry()),
    )


class _Built:
    def __init__(self) -> None:
        self.records: list[OutRecord] = []

    def append(self, *, key: bytes | None, value: bytes, timestamp: None, headers: Any) -> bool:  # noqa: ARG002  # aiokafka's signature
        self.records.append(OutRecord("", key or b"", value, tuple(headers)))
        return True

    def record_count(self) -> int:
        return len(self.records)


class _WholeProducer(_Producer):
    """Keeps each committed record whole, headers (the envelope) included."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[OutRecord] = []
        self._pending: list[OutRecord] = []

    def create_batch(self) -> _Built:  # type: ignore[override]
        return _Built()

    async def send_batch(self, builder: _Built, topic: str, partition: int) -> None:  # type: ignore[override]  # noqa: ARG002
        self._pending += [OutRecord(topic, r.key, r.value, r.headers) for r in builder.records]

    async def commit_transaction(self) -> None:
        self.sent += self._pending
        self._pending = []


class _Handover:
    """The committed view, read by ``reader`` (the tail's), with no other worker in it."""

    def __init__(self, reader: EntryReader) -> None:
        self.reader = reader

    @property
    def view(self) -> Any:
        return self.reader.view

    async def caught_up(self) -> None:
        pass

    async def moved(self, within: float) -> None:
        await asyncio.sleep(within)

    def check(self) -> None:
        pass


async def _resealed_after_the_new_key(logs: list[dict[str, Any]], within: float = 5.0) -> None:
    """Until ``state_resealed`` with entries in it is logged after ``encryption_key_changed``."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        events = [e["event"] for e in logs]
        if "encryption_key_changed" in events:
            after = logs[events.index("encryption_key_changed") :]
            if any(e["event"] == "state_resealed" and e["entries"] for e in after):
                return
        await asyncio.sleep(0.02)


async def test_a_new_encryption_key_picked_up_while_running_reseals_consent_and_revoking_the_old_one_loses_none(  # noqa: E501
    genuine: Run, pipeline_keys: FileKeyStore, project_policy: Policy, tmp_path: Path
) -> None:
    keys = _copy(pipeline_keys, tmp_path)
    reader = _read(keys, genuine.on(STATE))  # the restore at start: all under the current key
    filed = reader.view.consents.filed
    assert filed
    assert reader.resealable() == {}
    producer = _WholeProducer()
    clients = _Clients(_Consumer([], on_idle=lambda: None), producer)

    def open_task(task: TaskId, state: WorkerState) -> Any:
        processor = _processor(keys, project_policy, state)
        return processor, []

    loop = TransactionalLoop(clients, client_id="c", clock=lambda: AT_LOOP,
                             handover=_Handover(reader), open_task=open_task,
                             reseals=Reseals(reader))  # fmt: skip
    stop = asyncio.Event()
    with capture_logs() as logs:
        await loop.start()
        await loop.on_partitions_assigned([CONSENT_0])
        await loop.opened()
        assert [e["entries"] for e in logs if e["event"] == "state_resealed"] == [0]
        watch = asyncio.create_task(follow_keys(keys, loop, stop, every=0.02))
        running = asyncio.create_task(loop.run(stop))
        await asyncio.sleep(0.1)
        old = [k.key_id for k in keys.keys("worker")]
        keys.rotate("worker", kem=KemSuite.X25519, grace=timedelta(days=30))  # imported
        await _resealed_after_the_new_key(logs)
        stop.set()
        await running
        await watch
        await loop.stop()
    events = [e["event"] for e in logs]
    assert events.count("encryption_key_changed") == 1
    resealed = [e["entries"] for e in logs if e["event"] == "state_resealed"]
    after = [e["entries"] for e in logs[events.index("encryption_key_changed") :]
             if e["event"] == "state_resealed"]  # fmt: skip
    # At the opening, nothing to do; after the new key, every consent entry, once committed.
    assert resealed[0] == 0
    assert len(filed) in after
    written = [r for r in producer.sent if r.topic == STATE and r.key.startswith(b"k:")]
    # One whole-table re-seal: the regular check may queue the table before the watcher's
    # announcement comes (a keystore reloaded between its looks), which then queues nothing.
    assert sorted(r.key for r in written) == sorted(f"k:{f.record_id}".encode() for f in filed)

    # The rotation's last step, as after a compromise: the old keys revoked at once.
    for key_id in old:
        keys.revoke(key_id)
    after = _read(keys, [*genuine.on(STATE), *written])
    assert after.report.refused == {}
    assert after.view.consents.filed == filed
    # And the consent still governs: the hub, which needs it, is shared the next incident.
    task = TaskId(ingress("wmp"), 0)
    run = Run(_processor(keys, project_policy, after.view.task_state(task)))
    run.feed(ingress("wmp"), *seal_as(keys, "wmp", incident(), topic=ingress("wmp")))
    assert len(run.on(deliver("cog-tipton"))) == 1


def test_each_entry_is_queued_once_until_read_back_and_a_straggler_on_the_next_check(
    genuine: Run, pipeline_keys: FileKeyStore, project_policy: Policy, tmp_path: Path
) -> None:
    """Another worker that picks the new key up later may file consent under the old one
    meanwhile: the next check seals it again too, and nothing is written twice."""
    keys = _copy(pipeline_keys, tmp_path)
    reader = _read(keys, genuine.on(STATE))
    keys.rotate("worker", kem=KemSuite.X25519, grace=timedelta(days=30))
    stale = reader.resealable()
    assert stale
    reseals = Reseals(reader)
    task = SimpleNamespace(
        pending=Batch(), processor=_processor(keys, project_policy, WorkerState())
    )
    assert reseals.add_to(task, announce=True) == len(stale)  # type: ignore[arg-type]
    assert reseals.add_to(task, announce=False) == 0  # type: ignore[arg-type]  # in flight
    assert task.pending.resealed == len(stale)
    for r in task.pending.outs:  # committed, and the tail reads them back
        reader.apply(r.key, r.value, r.headers)
    assert reader.stale() == 0
    assert reseals.add_to(task, announce=False) == 0  # type: ignore[arg-type]

    straggler = next(r for r in genuine.on(STATE) if r.key.startswith(b"k:"))
    reader.apply(straggler.key, straggler.value, straggler.headers)  # under the old key
    assert reader.stale() == 1
    assert reseals.add_to(task, announce=False) == 1  # type: ignore[arg-type]
    assert task.pending.resealed == len(stale) + 1


def test_a_new_key_is_sealed_to_only_by_the_worker_holding_consent_partition_0() -> None:
    """With several workers, one seals the whole table, as at start; the others do nothing."""
    loop = TransactionalLoop(_Clients(_Consumer([], on_idle=lambda: None), _Producer()),
                             client_id="c", clock=lambda: AT_LOOP, handover=None,  # type: ignore[arg-type]
                             open_task=None)  # type: ignore[arg-type]  # fmt: skip
    asked: list[bool] = []
    loop.reseals = SimpleNamespace(add_to=lambda _t, *, announce: asked.append(announce))  # type: ignore[assignment]
    loop.pending_reseal = True
    loop._take_reseal()
    assert (asked, loop.pending_reseal) == ([], None)
    loop._tasks[CONSENT_0] = SimpleNamespace(closed=False)  # type: ignore[assignment]
    loop.pending_reseal = True
    loop._take_reseal()
    assert (asked, loop.pending_reseal) == ([True], None)


def _stale_reader(genuine: Run, keys: FileKeyStore) -> EntryReader:
    """The view as restored, then a new worker key: every consent entry under the old one."""
    reader = _read(keys, genuine.on(STATE))
    keys.rotate("worker", kem=KemSuite.X25519, grace=timedelta(days=30))
    assert reader.stale() == len(reader.view.consents.filed) > 0
    return reader


async def test_a_new_key_announced_after_a_check_queued_the_table_queues_none_of_it_again(
    genuine: Run, pipeline_keys: FileKeyStore, project_policy: Policy, tmp_path: Path
) -> None:
    """The check got to the reloaded keystore first: the announcement writes nothing twice,
    and ``state_resealed`` for those entries still comes after it, once they are committed."""
    keys = _copy(pipeline_keys, tmp_path)
    reader = _stale_reader(genuine, keys)
    count = reader.stale()
    reseals = Reseals(reader)
    task = SimpleNamespace(pending=Batch(), in_flight=None,
                           processor=_processor(keys, project_policy, WorkerState()))  # fmt: skip
    with capture_logs() as logs:
        assert reseals.add_to(task, announce=False) == count  # type: ignore[arg-type]
        assert reseals.add_to(task, announce=True) == 0  # type: ignore[arg-type]
        assert (task.pending.resealed, logs) == (count, [])  # its own commit logs it
        queued = task.pending
        task.pending = Batch()  # in flight: the commit that ends holds them, and logs it
        task.in_flight = asyncio.get_running_loop().create_future()
        assert reseals.add_to(task, announce=True) == 0  # type: ignore[arg-type]
        task.in_flight.set_result(queued)
        await asyncio.sleep(0)
        assert logs == []
        task.in_flight = asyncio.get_running_loop().create_future()  # committed before this one
        assert reseals.add_to(task, announce=True) == 0  # type: ignore[arg-type]
        task.in_flight.set_result(Batch())
        await asyncio.sleep(0)
        assert logs == [{"event": "state_resealed", "entries": count, "log_level": "info"}]
        task.in_flight = None  # committed, not read back yet
        assert reseals.add_to(task, announce=True) == 0  # type: ignore[arg-type]
    assert [e["entries"] for e in logs] == [count, count]
    assert len([r for r in queued.outs if r.key.startswith(b"k:")]) == count


async def test_a_reseal_dropped_with_consent_partition_0_is_queued_again_by_its_next_opening(
    genuine: Run, pipeline_keys: FileKeyStore, project_policy: Policy, tmp_path: Path
) -> None:
    """Partition 0 revoked before the re-seal committed: its batch is dropped, so the task
    that takes it again (here, on the same worker) seals the whole table again, to the new key."""
    keys = _copy(pipeline_keys, tmp_path)
    reader = _stale_reader(genuine, keys)
    count = reader.stale()
    producer = _WholeProducer()

    def open_task(task: TaskId, state: WorkerState) -> Any:
        return _processor(keys, project_policy, state), []

    loop = TransactionalLoop(_Clients(_Consumer([], on_idle=lambda: None), producer),
                             client_id="c", clock=lambda: AT_LOOP, handover=_Handover(reader),
                             open_task=open_task, reseals=Reseals(reader))  # fmt: skip
    await loop.start()
    for _ in range(2):
        await loop.on_partitions_assigned([CONSENT_0])
        await loop.opened()
        task = loop._tasks[CONSENT_0]
        assert task.pending.resealed == count
        await loop.on_partitions_revoked([CONSENT_0])  # nothing committed: dropped with it
    assert producer.sent == []
    await loop.on_partitions_assigned([CONSENT_0])
    await loop.opened()
    outs = loop._tasks[CONSENT_0].pending.outs
    for r in outs:  # committed at last, and the tail reads them back
        reader.apply(r.key, r.value, r.headers)
    await loop.stop()
    assert reader.stale() == 0
    assert reader.report.refused == {}


def test_the_stale_gauge_counts_entries_under_an_old_key_until_their_reseal_is_read_back(
    genuine: Run, pipeline_keys: FileKeyStore, project_policy: Policy, tmp_path: Path
) -> None:
    keys = _copy(pipeline_keys, tmp_path)
    reader = _read(keys, genuine.on(STATE))
    metrics = Metrics(CollectorRegistry())
    metrics.follow_stale(reader.stale)

    def gauge() -> float | None:
        return metrics.registry.get_sample_value("accord_worker_state_entries_stale")

    assert gauge() == 0
    keys.rotate("worker", kem=KemSuite.X25519, grace=timedelta(days=30))
    count = len(reader.view.consents.filed)
    assert gauge() == count > 0
    task = SimpleNamespace(pending=Batch(), in_flight=None,
                           processor=_processor(keys, project_policy, WorkerState()))  # fmt: skip
    Reseals(reader).add_to(task, announce=True)  # type: ignore[arg-type]
    assert gauge() == count  # queued, not yet committed and read back
    for r in task.pending.outs:
        reader.apply(r.key, r.value, r.headers)
    assert gauge() == 0


class _Staged:
    """The worker's keystore mid staged rotation (docs/operations.md, steps 1 to 4): its new
    encryption key seals at once, its old signing key signs until its own import."""

    def __init__(self, store: FileKeyStore) -> None:
        self._store = store
        self._old_signer = store.current_signing_key("worker")
        self.imported = False

    def current_signing_key(self, party: str) -> Any:
        if party == "worker" and not self.imported:
            return self._old_signer
        return self._store.current_signing_key(party)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def _reseal_and_read_back(reader: EntryReader, keys: Any, policy: Policy) -> list[OutRecord]:
    task = SimpleNamespace(pending=Batch(), in_flight=None,
                           processor=_processor(keys, policy, WorkerState()))  # fmt: skip
    Reseals(reader).add_to(task, announce=True)  # type: ignore[arg-type]
    for r in task.pending.outs:
        reader.apply(r.key, r.value, r.headers)
    return [r for r in task.pending.outs if r.key.startswith(b"k:")]


def test_a_staged_rotation_reseals_consent_again_once_the_new_signing_key_signs(
    genuine: Run, pipeline_keys: FileKeyStore, project_policy: Policy, tmp_path: Path
) -> None:
    """The operator's review: consent re-sealed to the new encryption key was still signed by
    the old signing key (days pass before the worker's own import), the stale gauge read 0,
    and revoking the old keys as documented lost the whole table at the next start."""
    store = _copy(pipeline_keys, tmp_path)
    keys = _Staged(store)
    old = [k.key_id for k in store.keys("worker")]
    reader = _read(keys, genuine.on(STATE))  # type: ignore[arg-type]
    count = len(reader.view.consents.filed)
    assert count > 0
    assert reader.stale() == 0
    store.rotate("worker", kem=KemSuite.X25519, grace=timedelta(days=45))  # step 1
    assert reader.stale() == count  # sealed to the old encryption key
    first = _reseal_and_read_back(reader, keys, project_policy)
    assert (len(first), reader.stale()) == (count, 0)
    keys.imported = True  # step 4: the new signing key signs
    assert reader.stale() == count  # signed by the old signing key
    second = _reseal_and_read_back(reader, keys, project_policy)
    assert (len(second), reader.stale()) == (count, 0)
    for key_id in old:  # the documented revoke, both old keys
        store.revoke(key_id)
    after = _read(store, [*genuine.on(STATE), *first, *second])
    assert after.report.refused == {}
    assert after.view.consents.filed == reader.view.consents.filed


async def test_a_new_signing_key_alone_asks_for_a_reseal(
    pipeline_keys: FileKeyStore, tmp_path: Path
) -> None:
    keys = _Staged(_copy(pipeline_keys, tmp_path))
    keys.rotate("worker", kem=KemSuite.X25519, grace=timedelta(days=45))
    loop = SimpleNamespace(pending_policy=None, pending_reseal=None)
    stop = asyncio.Event()
    with capture_logs() as logs:
        watch = asyncio.create_task(follow_keys(keys, loop, stop, every=0.01))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        loop.pending_reseal = None  # the regular check's False, taken by the loop
        keys.imported = True
        await asyncio.sleep(0.05)
        stop.set()
        await watch
    assert loop.pending_reseal is True
    assert [e["event"] for e in logs] == ["signing_key_changed"]
