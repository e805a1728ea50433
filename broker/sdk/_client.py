"""What the SDK's clients share: ``async with`` support and how they are given Kafka."""

from __future__ import annotations

from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from broker.config import KafkaSettings
from broker.kafka import KafkaClients


def utcnow() -> datetime:
    return datetime.now(UTC)


def kafka_clients(kafka: KafkaClients | KafkaSettings) -> KafkaClients:
    """The SDK takes Kafka settings (usually ``load_settings().kafka``) or ready clients."""
    return kafka if isinstance(kafka, KafkaClients) else KafkaClients(kafka)


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
