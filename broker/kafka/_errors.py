"""Kafka's exceptions, translated at the boundary into ``broker.errors`` types.

Callers never import aiokafka to handle a failure, and every message says what Accord was
doing, not what the library's internals were.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import structlog
from aiokafka.errors import KafkaError, ProducerFenced

from broker.errors import Fenced, TransportError

__all__ = ["abort_quietly", "connecting", "quiet_leftovers", "stop_quietly", "translated"]

log = structlog.get_logger("accord.kafka")

# aiokafka waits up to its request timeout (40 s) on a broker that takes the connection and
# never answers (a firewall that drops packets, a proxy, another service on the port): past
# this, say so rather than sit silent.
NOT_ANSWERING_AFTER_S = 5.0


@contextlib.asynccontextmanager
async def translated(what: str) -> AsyncIterator[None]:
    """Re-raise Kafka's errors (and socket errors) as ``TransportError`` naming ``what``.

    A producer fenced by a newer one with the same transactional id raises ``Fenced``: the
    caller decides what being taken over means for it.
    """
    try:
        yield
    except ProducerFenced as exc:
        raise Fenced(f"{what}: another process took over this transactional id") from exc
    except KafkaError as exc:
        raise TransportError(f"{what}: {type(exc).__name__}") from exc
    except OSError as exc:
        raise TransportError(f"{what}: {exc.strerror or type(exc).__name__}") from exc


@contextlib.asynccontextmanager
async def connecting(bootstrap: str) -> AsyncIterator[None]:
    """:func:`translated` for a client's first connection, with a warning
    (``kafka_not_answering``) once Kafka has not answered for a few seconds."""
    handle = asyncio.get_running_loop().call_later(
        NOT_ANSWERING_AFTER_S,
        lambda: log.warning(
            "kafka_not_answering", bootstrap=bootstrap, waited_s=NOT_ANSWERING_AFTER_S
        ),
    )
    try:
        async with translated(f"connecting to Kafka at {bootstrap}"):
            yield
    finally:
        handle.cancel()


async def stop_quietly(client: Any) -> None:
    """Stop a client on the way out; a failure to stop must not hide the error (or the clean
    exit) that got us here."""
    with contextlib.suppress(KafkaError, OSError):
        await client.stop()


async def abort_quietly(producer: Any) -> None:
    """Abort a transaction after a failed commit, best effort.

    After a fence the producer is in a fatal state and aiokafka refuses the abort with an
    AssertionError; the commit's own error is the one to report.
    """
    with contextlib.suppress(KafkaError, AssertionError, OSError):
        await producer.abort_transaction()


def quiet_leftovers(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """An event-loop exception handler for long-running processes.

    Once a commit fails, aiokafka's sender leaves futures holding the same error behind;
    asyncio would print each with a traceback at exit, burying the one line that says why
    the process stopped. They are logged as one short line each instead.
    """
    exc = context.get("exception")
    if isinstance(exc, KafkaError) and "never retrieved" in str(context.get("message")):
        log.debug("kafka_future_unretrieved", error=type(exc).__name__)
        return
    loop.default_exception_handler(context)
