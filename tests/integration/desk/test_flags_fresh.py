"""On real Kafka: the flag service's first step stamps its commits and, once it has read
everything, commits its position (past the last commit marker), so the desk learns that the
flags are current, and, with the service stopped and records delivered since, that they are
not."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from broker.desk import _flags_source
from broker.desk._flags_fresh import FlagsFreshness
from broker.desk._flags_source import DeliveryReader, Opened
from tests.integration.desk.test_delivery_reader import (
    RECORDS,
    _party_with_deliveries,
    _until,
    _write_in_transactions,
)
from tests.kafka_helpers import admin_settings, clients


async def test_the_desk_sees_the_flag_service_current_then_stale_once_it_stops(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_flags_source, "IDLE_COMMIT", 0.5)
    party, topic = await _party_with_deliveries(kafka_bootstrap)
    seen: list[bytes] = []

    async def nothing_sent() -> list[Any]:
        return []

    def opened(value: bytes | None, _headers: Any) -> Opened:
        assert value is not None
        seen.append(value)
        return Opened(None, nothing_sent)

    now = [datetime.now(UTC)]
    fresh = FlagsFreshness(clients(kafka_bootstrap), party, lambda: now[0])
    reader = DeliveryReader(admin_settings(kafka_bootstrap), party, opened)
    task = asyncio.create_task(reader.run())

    async def current() -> bool:
        now[0] = datetime.now(UTC)
        answer = await fresh.check()
        return (
            len(seen) == RECORDS and answer.partitions == 1 and answer.backlog == 0
            and not answer.stale
        )  # fmt: skip

    try:
        # Read to the end, idle: the position is committed past the trailing marker.
        await _until(current, "the desk never saw the flag service current")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert reader.counts is None  # counts are optional: the desk reads Kafka, not /metrics
    await _write_in_transactions(kafka_bootstrap, topic)  # delivered while it is stopped
    now[0] = datetime.now(UTC) + timedelta(minutes=6)
    answer = await fresh.check()
    assert answer.stale
    # Each transaction a record and a marker, and one aborted (a record and a marker).
    assert answer.behind == 2 * RECORDS + 2
