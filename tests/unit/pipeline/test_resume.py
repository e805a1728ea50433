"""Where the worker resumes: consumed offsets live in its changelog, not the group's commits."""

from __future__ import annotations

from collections.abc import Callable

from broker.audit import AuditKind, AuditRecord
from broker.kafka import TopicPartition
from broker.keys import FileKeyStore
from broker.pipeline._effects import OutRecord, SetOffset
from broker.pipeline._loop import _Resume
from broker.pipeline._processor import Processor
from broker.pipeline._state import WorkerState
from broker.topics import AUDIT, STATE, ingress
from tests.unit.pipeline.conftest import AT
from tests.unit.pipeline.test_processor import incident, seal_as


def test_consumed_offsets_survive_a_rebuild_from_the_changelog() -> None:
    state = WorkerState()
    entries = [
        state.change(SetOffset("accord.ingress.wmp", 2, 41)),
        state.change(SetOffset("accord.consent", 0, 7)),
        state.change(SetOffset("accord.ingress.wmp", 2, 97)),  # a later commit there
    ]
    rebuilt = WorkerState()
    for entry in entries:
        assert not entry.sensitive  # an offset says nothing about anyone
        rebuilt.restore(entry.key, entry.value)
    assert rebuilt.offsets == {("accord.ingress.wmp", 2): 97, ("accord.consent", 0): 7}


class _Consumer:
    def __init__(self) -> None:
        self.seeks: dict[TopicPartition, int] = {}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks[tp] = offset


async def test_an_assigned_partition_resumes_at_the_workers_own_position() -> None:
    """Known partitions seek to the position in memory; a new one keeps the reset policy."""
    known = TopicPartition("accord.ingress.wmp", 0)
    new = TopicPartition("accord.ingress.nhs-bc", 0)
    positions = {known: 120}
    consumer = _Consumer()
    listener = _Resume(consumer, positions)  # type: ignore[arg-type]  # a fake consumer
    await listener.on_partitions_assigned([known, new])
    assert consumer.seeks == {known: 120}
    positions[known] = 180  # processed further, commit still in flight, then a rebalance
    await listener.on_partitions_revoked([known, new])
    await listener.on_partitions_assigned([known])
    assert consumer.seeks == {known: 180}


def test_the_chain_head_is_written_once_per_transaction_and_resumes_the_chain(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """Records carry no head entry; closing a transaction adds a signed checkpoint and then
    the newest head, only when the chain moved."""
    processor = make_processor()
    outs: list[OutRecord] = []
    for offset in range(3):
        record = seal_as(pipeline_keys, "wmp", incident(), topic=ingress("wmp"))
        outs += processor.handle(ingress("wmp"), 0, offset, *record, at=AT)
    assert not [o for o in outs if o.topic == STATE and o.key.startswith(b"h:")]  # type: ignore[union-attr]
    closing = processor.consumed({(ingress("wmp"), 0): 3})
    heads = [o for o in closing if o.topic == STATE and o.key.startswith(b"h:")]  # type: ignore[union-attr]
    assert len(heads) == 1
    chain = processor.outbox.chain
    rebuilt = WorkerState()
    rebuilt.restore(heads[0].key.decode(), heads[0].value)  # type: ignore[union-attr]
    assert rebuilt.heads[chain.chain] == (chain.next_seq - 1, chain.prev_hash)
    last = AuditRecord.model_validate_json([o for o in closing if o.topic == AUDIT][-1].value)
    assert last.kind is AuditKind.CHECKPOINT
    assert last.data["covers_seq"] == last.seq - 1  # everything the transaction wrote
    assert (last.seq, last.hash) == rebuilt.heads[chain.chain]
    again = processor.consumed({})
    assert again == []  # nothing new: no second head
