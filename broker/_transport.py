"""Kafka's exceptions, translated at the boundary into ``TransportError``.

One place for it: the SDK, the audit indexer and every audit-chain writer wrap their Kafka
calls in :func:`translated`, so callers never import aiokafka to handle a failure and every
message says what Accord was doing, not what the library's internals were.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from broker.errors import TransportError


@contextlib.asynccontextmanager
async def translated(what: str) -> AsyncIterator[None]:
    """Re-raise aiokafka's errors (and socket errors) as ``TransportError`` naming ``what``."""
    from aiokafka.errors import KafkaError  # noqa: PLC0415  # aiokafka is a slow import

    try:
        yield
    except KafkaError as exc:
        raise TransportError(f"{what}: {type(exc).__name__}") from exc
    except OSError as exc:
        raise TransportError(f"{what}: {exc.strerror or type(exc).__name__}") from exc


async def stop_quietly(client: Any) -> None:
    """Stop an aiokafka client on the way out; a failure to stop must not hide the error
    (or the clean exit) that got us here."""
    from aiokafka.errors import KafkaError  # noqa: PLC0415

    with contextlib.suppress(KafkaError, OSError):
        await client.stop()
