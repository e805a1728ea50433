"""The flag service's first step stamps an idle commit ("flags are current") only when Kafka
has lately said where each partition ends and its position has reached that end, never on
an empty poll alone (aiokafka answers one while its fetches fail and back off)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from broker.config import KafkaSettings
from broker.desk._flags_source import ANSWERED, IDLE_COMMIT, DeliveryReader, Opened

NOW = 1_800_000_000.0


class IdleConsumer:
    """What ``_idle`` asks of an aiokafka consumer, per partition: its position, the ends the
    last fetch gave and when that fetch answered (ms), as aiokafka keeps them."""

    def __init__(self, **parts: tuple[int, int | None, int | None, float | None]) -> None:
        # partition → (position, last stable offset, highwater, fetch answered at (s))
        self.parts = parts
        self.commits: list[dict[str, Any]] = []

    def assignment(self) -> set[str]:
        return set(self.parts)

    async def position(self, tp: str) -> int:
        return self.parts[tp][0]

    def last_stable_offset(self, tp: str) -> int | None:
        return self.parts[tp][1]

    def highwater(self, tp: str) -> int | None:
        return self.parts[tp][2]

    def last_poll_timestamp(self, tp: str) -> int | None:
        answered = self.parts[tp][3]
        return None if answered is None else int(answered * 1000)

    async def commit(self, offsets: dict[str, Any]) -> None:
        self.commits.append(offsets)


def _never_opened(value: bytes | None, headers: Any) -> Opened:
    raise AssertionError("an idle poll opens nothing")


async def _idle(consumer: IdleConsumer) -> DeliveryReader:
    reader = DeliveryReader(KafkaSettings(), "sandwell-coord", _never_opened, clock=lambda: NOW)
    await reader._idle(consumer, "the flag service reading")
    return reader


async def test_read_to_every_partitions_last_stable_offset_the_position_is_stamped() -> None:
    consumer = IdleConsumer(p0=(12, 12, 12, NOW - 0.2), p1=(7, 7, 9, NOW - 1))
    reader = await _idle(consumer)
    [offsets] = consumer.commits
    assert {tp: at for tp, (at, _) in offsets.items()} == {"p0": 12, "p1": 7}
    assert {json.loads(stamp)["at"] for _, stamp in offsets.values()} == {NOW}
    assert reader._committed_at == NOW


@pytest.mark.parametrize(
    ("part", "why"),
    [
        ((5, 12, 12, NOW - 0.2), "the position has not reached the end"),
        ((12, None, None, None), "no fetch has answered since the start"),
        ((12, 12, 12, NOW - ANSWERED - 1), "the last fetch answered too long ago"),
    ],
)
async def test_an_empty_poll_is_not_stamped_current_unless_kafka_says_all_was_read(
    part: tuple[int, int | None, int | None, float | None], why: str
) -> None:
    """One partition not known to be read to its end holds back the stamp for all: the
    desk's commit times would otherwise say "current" (the desk reads the newest)."""
    consumer = IdleConsumer(p0=(3, 3, 3, NOW - 0.2), p1=part)
    reader = await _idle(consumer)
    assert consumer.commits == [], why
    assert reader._committed_at == 0.0


async def test_without_a_last_stable_offset_the_highwater_mark_is_the_end() -> None:
    consumer = IdleConsumer(p0=(4, -1, 4, NOW - 0.2))
    await _idle(consumer)
    assert [{tp: at for tp, (at, _) in c.items()} for c in consumer.commits] == [{"p0": 4}]


async def test_once_stamped_the_next_idle_stamp_waits_a_minute() -> None:
    consumer = IdleConsumer(p0=(4, 4, 4, NOW - 0.2))
    reader = await _idle(consumer)
    await reader._idle(consumer, "the flag service reading")
    assert len(consumer.commits) == 1
    reader._clock = lambda: NOW + IDLE_COMMIT
    consumer.parts["p0"] = (4, 4, 4, NOW + IDLE_COMMIT - 0.2)
    await reader._idle(consumer, "the flag service reading")
    assert len(consumer.commits) == 2
