"""A rebalance is not Kafka being silent: taking dozens of partitions on starts a producer for
each, a bounded number at a time, and that takes seconds while Kafka answers every start.
``kafka_not_answering`` once fired right after ``partitions_revoked`` when a new agency's
ingress topic was picked up, with Kafka fine. It now says a pause in which no start ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from structlog.testing import capture_logs

from broker.kafka import _errors
from broker.pipeline._processor import Processor
from tests.unit.pipeline.test_loop_assign import PARTITIONS, _loop

NOT_ANSWERING_S = 0.2


@pytest.fixture(autouse=True)
def soon(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_errors, "NOT_ANSWERING_AFTER_S", NOT_ANSWERING_S)


def _warnings(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "kafka_not_answering"]


async def test_starting_many_producers_that_each_answer_promptly_is_not_kafka_not_answering(
    make_processor: Callable[..., Processor],
) -> None:
    # 30 partitions, 12 at a time, 0.1 s each: 0.3 s in all, longer than the warning's wait,
    # but no pause without an answer lasts it.
    loop, _, _ = await _loop(make_processor, delay=NOT_ANSWERING_S / 2)
    with capture_logs() as logs:
        await loop.on_partitions_revoked([])
        await loop.on_partitions_assigned(PARTITIONS)
        await loop.opened()
    assert loop.assigned == len(PARTITIONS)
    assert _warnings(logs) == []
    took = next(e["took_s"] for e in logs if e["event"] == "partitions_assigned")
    assert took > NOT_ANSWERING_S  # longer than the warning's wait, yet no warning
    await loop.stop()


async def test_producers_that_get_no_answer_are_still_warned_about_once(
    make_processor: Callable[..., Processor],
) -> None:
    loop, _, _ = await _loop(make_processor, delay=NOT_ANSWERING_S * 1.5)
    with capture_logs() as logs:
        await loop.on_partitions_assigned(PARTITIONS)
        await asyncio.sleep(NOT_ANSWERING_S * 1.25)
        await loop.on_partitions_revoked(PARTITIONS)
        await asyncio.sleep(NOT_ANSWERING_S * 1.5)  # a warning left armed would fire now
    assert [(e["log_level"], e["waited_s"]) for e in _warnings(logs)] == [
        ("warning", NOT_ANSWERING_S)
    ]
    await loop.stop()
