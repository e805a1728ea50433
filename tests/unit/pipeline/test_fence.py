"""The consent fence: which consent end offsets a batch of events waits for, and when it need
not wait for a round trip at all (broker/pipeline/_fence.py)."""

from __future__ import annotations

import asyncio
import math

import pytest

from broker.errors import TransportError
from broker.kafka import TopicPartition
from broker.pipeline._fence import ConsentFence
from broker.topics import CONSENT, ingress

C0 = TopicPartition(CONSENT, 0)
C1 = TopicPartition(CONSENT, 1)
I0 = TopicPartition(ingress("wmp"), 0)


class _Broker:
    """End offsets as the broker reads them when it answers; answers held back on demand."""

    def __init__(self, ends: dict[TopicPartition, int]) -> None:
        self.ends = dict(ends)
        self.calls = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.allowed = math.inf  # requests numbered below this are answered
        self.fail = False
        self._cond = asyncio.Condition()

    async def ask(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        number = self.calls
        self.calls += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            async with self._cond:
                await self._cond.wait_for(lambda: number < self.allowed)
            if self.fail:
                raise TransportError("reading end offsets: the broker went away")
            return {tp: self.ends[tp] for tp in partitions if tp in self.ends}
        finally:
            self.in_flight -= 1

    async def allow(self, count: float) -> None:
        async with self._cond:
            self.allowed = count
            self._cond.notify_all()


async def _settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def _two_answers(broker: _Broker, fence: ConsentFence) -> None:
    """Two batches of new events, each decided after a request sent after its fetch: two
    answers in hand, and nothing asked beyond them."""
    for fetch, offset in ((1, 10), (2, 11)):
        fence.fetches = fetch
        assert await fence.covering([C0], {I0: offset}, fetch=fetch) == {C0: 5}
    await _settle()
    assert broker.calls == 2  # one request a batch, as before the fence
    assert broker.in_flight == 0


async def test_a_backlog_is_decided_under_answers_in_hand_without_a_round_trip() -> None:
    """Events the broker had appended before the older of two consecutive answers are
    covered by the newer answer's consent ends: no request is waited for."""
    broker = _Broker({C0: 5, I0: 100})
    fence = ConsentFence(broker.ask)
    await _two_answers(broker, fence)
    await broker.allow(2)  # from now on the broker does not answer
    broker.ends[C0] = 7  # a consent appended after both answers
    fence.fetches = 3
    got = await asyncio.wait_for(fence.covering([C0], {I0: 99}, fetch=3), timeout=2)
    assert got == {C0: 5}
    assert broker.calls == 3  # the next batch's answer was sent for, not waited for
    await fence.close()


async def test_events_newer_than_the_answers_wait_for_a_request_sent_after_their_fetch() -> None:
    broker = _Broker({C0: 5, I0: 100})
    fence = ConsentFence(broker.ask)
    await _two_answers(broker, fence)
    await broker.allow(2)
    fence.fetches = 3
    waiting = asyncio.create_task(fence.covering([C0], {I0: 100}, fetch=3))
    await _settle()
    assert not waiting.done()  # offset 100 is not below either answer's end
    broker.ends[C0] = 9  # appended before the event: the answer must see it
    await broker.allow(math.inf)
    assert await asyncio.wait_for(waiting, timeout=2) == {C0: 9}


async def test_a_request_sent_before_the_fetch_does_not_cover_its_batch() -> None:
    broker = _Broker({C0: 5, I0: 0})
    fence = ConsentFence(broker.ask)
    await broker.allow(0)
    fence.fetches = 1
    first = asyncio.create_task(fence.covering([C0], {I0: 0}, fetch=1))
    await _settle()  # request 0 is out, sent after fetch 1
    fence.fetches = 2  # the next fetch returns while it is out
    second = asyncio.create_task(fence.covering([C0], {I0: 3}, fetch=2))
    await broker.allow(1)
    assert await asyncio.wait_for(first, timeout=2) == {C0: 5}
    await _settle()
    assert not second.done()  # request 0 went before fetch 2: it proves nothing for it
    broker.ends[C0] = 6
    await broker.allow(math.inf)
    assert await asyncio.wait_for(second, timeout=2) == {C0: 6}
    assert broker.most_in_flight == 1  # one request at a time: consecutive answers pair up


async def test_an_answer_without_a_consent_partition_covers_nothing() -> None:
    broker = _Broker({C0: 5, I0: 100})  # consent partition 1 added since: not in answers
    fence = ConsentFence(broker.ask)
    await broker.allow(1)
    fence.fetches = 1
    waiting = asyncio.create_task(fence.covering([C0, C1], {I0: 1}, fetch=1))
    await _settle()
    assert broker.calls == 2  # the first answer lacked C1: asked again
    assert not waiting.done()
    broker.ends[C1] = 4
    await broker.allow(math.inf)
    assert await asyncio.wait_for(waiting, timeout=2) == {C0: 5, C1: 4}


async def test_a_failed_request_fails_the_wait() -> None:
    broker = _Broker({C0: 5})
    broker.fail = True
    fence = ConsentFence(broker.ask)
    with pytest.raises(TransportError, match="went away"):
        await fence.covering([C0], {I0: 0}, fetch=0)


async def test_a_failed_request_started_for_the_next_batch_fails_that_batch() -> None:
    broker = _Broker({C0: 5, I0: 100})
    fence = ConsentFence(broker.ask)
    await _two_answers(broker, fence)
    broker.fail = True
    fence.fetches = 3
    await fence.covering([C0], {I0: 1}, fetch=3)  # covered; request 2 goes out, fails
    await _settle()
    with pytest.raises(TransportError):
        await fence.covering([C0], {I0: 2}, fetch=4)


async def test_closing_cancels_the_request_in_flight() -> None:
    broker = _Broker({C0: 5})
    fence = ConsentFence(broker.ask)
    await broker.allow(0)
    waiting = asyncio.create_task(fence.covering([C0], {I0: 0}, fetch=0))
    await _settle()
    assert broker.in_flight == 1
    waiting.cancel()
    await fence.close()
    assert broker.in_flight == 0
