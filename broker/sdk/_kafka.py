"""The SDK's only contact with aiokafka: clients built one way, errors translated here."""

from __future__ import annotations

from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


def idempotent_producer(bootstrap: str, client_id: str) -> AIOKafkaProducer:
    # acks=all + idempotence: a retried send is written once, and only when every in-sync
    # replica has it.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
    )


def committed_consumer(bootstrap: str, topic: str, group: str, client_id: str) -> AIOKafkaConsumer:
    # read_committed: records of an aborted worker transaction are never seen.
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        client_id=client_id,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # Records become visible when the broker's transaction commits; ask often rather
        # than wait out a long poll.
        fetch_max_wait_ms=20,
    )


def utcnow() -> datetime:
    return datetime.now(UTC)


class AsyncClient:
    """``async with`` support for SDK clients that define ``start`` and ``stop``."""

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
