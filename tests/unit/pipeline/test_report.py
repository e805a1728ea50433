"""The group's offsets report (``GroupReport``): what it reports, and what a revocation and a
clean stop do to a report in flight. A stand-in consumer; tests/e2e/test_group_offsets.py
holds the real group to it."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from broker.kafka import Consumer, TopicPartition
from broker.pipeline import _report
from broker.pipeline._report import GroupReport

A, B = TopicPartition("accord.ingress.wmp", 0), TopicPartition("accord.ingress.wmp", 1)


class Group:
    """A consumer holding ``assigned``; each commit is recorded, and waits for ``answer``
    while ``hold`` is set (aiokafka retrying a commit the coordinator did not answer)."""

    def __init__(self, *assigned: TopicPartition) -> None:
        self.assigned = set(assigned)
        self.commits: list[dict[TopicPartition, int]] = []
        self.hold = False
        self.answer = asyncio.Event()

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))
        if self.hold:
            await self.answer.wait()


def consumer(group: Group) -> Consumer:
    return cast("Consumer", cast("Any", group))


async def test_a_revocation_cancels_a_report_in_flight_lest_it_land_after_the_rebalance() -> None:
    group = Group(A, B)
    group.hold = True
    report = GroupReport()
    report.durable.update({A: 5, B: 7})
    report.progress(consumer(group))
    await asyncio.sleep(0)
    running = report.running
    assert running is not None
    assert not running.done()
    await report.forget({B})
    assert running.cancelled()
    assert report.durable == {A: 5}


async def test_a_partition_given_up_is_not_reported_again_and_the_rest_is_not_repeated(
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr(_report, "REPORT_EVERY_S", 0.0)
    group = Group(A, B)
    report = GroupReport()
    report.durable.update({A: 5, B: 7})
    report.progress(consumer(group))
    await asyncio.wait({report.running} if report.running else set())
    assert group.commits == [{A: 5, B: 7}]
    group.assigned = {A}
    await report.forget({B})
    report.progress(consumer(group))  # nothing new on A: nothing to say
    assert report.running is not None
    await asyncio.wait({report.running})
    assert group.commits == [{A: 5, B: 7}]


async def test_a_clean_stop_reports_once_more_even_when_a_revocation_cancelled_the_last() -> None:
    group = Group(A)
    group.hold = True
    report = GroupReport()
    report.durable[A] = 3
    report.progress(consumer(group))
    await asyncio.sleep(0)

    async def revoked_meanwhile() -> None:
        await asyncio.sleep(0.01)
        await report.forget(set())

    group_left = asyncio.create_task(revoked_meanwhile())
    group.hold = False
    await report.now(consumer(group))  # the cancelled report ends its wait, not the stop
    await group_left
    assert group.commits == [{A: 3}, {A: 3}]


async def test_a_partition_given_up_is_not_reported_by_a_late_commit_or_a_stale_assignment(
    monkeypatch: Any,
) -> None:
    """Review s43r2: during the revocation callback a revoked task's last commit set its
    offset again, and aiokafka's assignment still listed the partition until the join
    ended, so a new report could include it and be retried after the rebalance."""
    monkeypatch.setattr(_report, "REPORT_EVERY_S", 0.0)
    group = Group(A, B)
    report = GroupReport()
    report.durable.update({A: 5, B: 7})
    await report.forget({B})
    report.committed(B, 9)  # its task settling, after forget
    report.committed(A, 6)
    report.progress(consumer(group))  # assignment() still lists B
    assert report.running is not None
    await asyncio.wait({report.running})
    assert group.commits == [{A: 6}]
    report.taken_on(B, 9)  # assigned back: from the changelog, reported again
    report.progress(consumer(group))
    await asyncio.wait({report.running})
    assert group.commits == [{A: 6}, {B: 9}]


async def test_a_take_on_ending_while_a_revocation_waits_does_not_bring_the_partition_back(
    monkeypatch: Any,
) -> None:
    """Review s43r5: forget() waits for the cancelled report; an opening of the partition
    that ends meanwhile cleared its mark, and the revoked task's settling commit was then
    reported while aiokafka's assignment still listed it."""
    monkeypatch.setattr(_report, "REPORT_EVERY_S", 0.0)
    group = Group(A, B)
    group.hold = True
    report = GroupReport()
    report.durable.update({A: 5, B: 7})
    report.progress(consumer(group))
    await asyncio.sleep(0)  # a report in flight, held

    async def opening_ends() -> None:
        report.taken_on(B, 7)

    opener = asyncio.create_task(opening_ends())
    await report.forget({B})  # yields while the cancelled report ends: the opening ends
    await opener
    group.hold = False
    report.committed(B, 9)  # the revoked task's commit settling
    report.progress(consumer(group))
    if report.running is not None:
        await asyncio.wait({report.running})
    assert all(B not in sent for sent in group.commits[1:])
