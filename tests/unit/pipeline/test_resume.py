"""Where the worker resumes: consumed offsets live in its changelog, not the group's commits."""

from __future__ import annotations

from aiokafka import TopicPartition

from broker.pipeline import WorkerState
from broker.pipeline._loop import _Resume


def test_consumed_offsets_survive_a_rebuild_from_the_changelog() -> None:
    state = WorkerState()
    entries = [
        state.set_offset("accord.ingress.wmp", 2, 41),
        state.set_offset("accord.consent", 0, 7),
        state.set_offset("accord.ingress.wmp", 2, 97),  # a later commit of the same partition
    ]
    rebuilt = WorkerState()
    for entry in entries:
        assert not entry.sensitive  # an offset says nothing about anyone
        rebuilt.apply(entry.key, entry.value)
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
