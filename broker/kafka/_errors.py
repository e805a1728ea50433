"""Kafka's exceptions, translated at the boundary into ``broker.errors`` types.

Callers never import aiokafka to handle a failure, and every message says what Accord was
doing, not what the library's internals were.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    NodeNotReadyError,
    ProducerFenced,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)

from broker.errors import Fenced, TransportError
from broker.kafka._causes import keeping_causes, refusal

if TYPE_CHECKING:
    from broker.kafka._clients import KafkaClients

__all__ = [
    "abandon",
    "abandon_consumer",
    "abort_quietly",
    "access_denied",
    "connecting",
    "left_running",
    "quiet_leftovers",
    "stop_bounded",
    "stop_in_background",
    "stop_quietly",
    "translated",
]

log = structlog.get_logger("accord.kafka")

# aiokafka waits up to its request timeout (40 s) on a broker that takes the connection and
# never answers (a firewall that drops packets, a proxy, another service on the port): past
# this, say so rather than sit silent.
NOT_ANSWERING_AFTER_S = 5.0

#: How long :func:`stop_bounded` waits for a client's stop. A consumer's fetcher has a fetch in
#: flight, or sends one, as it stops; when the broker reads that request and the TLS
#: close_notify after it in one read, Kafka (4.x, ``SslTransportLayer.read``) leaves the close
#: "for the next poll", which never comes on a quiet connection, so the broker never answers
#: it and the close waits out the event loop's TLS shutdown timeout (30 s; aiokafka does not
#: set it; docs/performance.md). A healthy close takes tens of ms.
CLOSE_WAIT_S = 1.0


_DENIED = (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)


#: What a connection that failed for no cause aiokafka logged is said as: refused, lost, or
#: taken and never answered look the same from here.
NO_CONNECTION = "no connection, or no answer"

#: Said for a send failed by :func:`abandon`, not for Kafka being out of reach.
ABANDONED = "the producer was abandoned"


class Abandoned(KafkaConnectionError):  # type: ignore[misc]  # aiokafka is untyped
    """What :func:`abandon` fails a producer's pending sends with (a KafkaConnectionError, as
    aiokafka's callers expect one), told apart from a connection that failed. Made with no
    arguments, or as aiokafka copies one for each batch it fails."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(args or (ABANDONED,)))


@contextlib.asynccontextmanager
async def translated(what: str, *, principal: str | None = None) -> AsyncIterator[None]:
    """Re-raise Kafka's errors (and socket errors) as ``TransportError`` naming ``what``.

    A producer fenced by a newer one with the same transactional id raises ``Fenced``: the
    caller decides what being taken over means for it. A request Kafka's ACLs refuse is
    said as a refusal of ``principal`` (the login, when not given), naming what it was
    refused, not as the name of aiokafka's exception. A connection that failed (a client's
    start inside the block, or a later request that found no connection: aiokafka's
    ``NodeNotReadyError``) names its cause as :func:`connecting` does: a refused login or a
    TLS failure aiokafka logged for it (the latest, within ``CAUSES_FRESH_S``), else that
    Kafka could not be reached.
    """
    async with _translating(what, principal, None, ca_known=False):
        yield


@contextlib.asynccontextmanager
async def _translating(
    what: str, principal: str | None, ca: Path | None, *, ca_known: bool, connecting: bool = False
) -> AsyncIterator[None]:
    # aiokafka says only "Unable to bootstrap" (or, for a later request, that the node is not
    # ready) whatever went wrong: why each attempt failed is in what it logged meanwhile,
    # kept for the block's duration.
    with keeping_causes() as causes:
        try:
            yield
        except ProducerFenced as exc:
            raise Fenced(f"{what}: another process took over this transactional id") from exc
        except _DENIED as exc:
            raise TransportError(f"{what}: {refused_access(exc, principal)}") from exc
        except Abandoned as exc:
            raise TransportError(f"{what}: {ABANDONED}") from exc
        except (KafkaConnectionError, NodeNotReadyError) as exc:
            why = refusal(causes, principal, ca, ca_known=ca_known)
            if why is None:
                # "connecting to Kafka at ..." says already what was not reached.
                why = NO_CONNECTION if connecting else f"could not reach Kafka: {NO_CONNECTION}"
            raise TransportError(f"{what}: {why}") from exc
        except KafkaTimeoutError as exc:
            # Its name alone ("KafkaTimeoutError") told an operator less than this.
            raise TransportError(f"{what}: Kafka did not answer in time") from exc
        except KafkaError as exc:
            raise TransportError(f"{what}: {type(exc).__name__}") from exc
        except OSError as exc:
            raise TransportError(f"{what}: {exc.strerror or type(exc).__name__}") from exc


@contextlib.asynccontextmanager
async def connecting(
    kafka: str | KafkaClients, *, doing: str | None = None
) -> AsyncIterator[Callable[[], None]]:
    """:func:`translated` for a client's first connection, with a warning
    (``kafka_not_answering``) once Kafka has not answered for a few seconds.

    Given the clients rather than only their bootstrap address, a refusal names the
    principal, and a certificate that does not verify the CA file (never the password).
    ``doing``: what the connection is for, said before it (a send that starts a producer).

    A block that connects many clients one after another (a worker's task producers after a
    rebalance) calls what it is given (``as answered``) each time one has connected: Kafka
    answered, so the warning waits its few seconds from then. Else the block's length, not
    Kafka's silence, would set it off.
    """
    if isinstance(kafka, str):
        bootstrap, principal, ca = kafka, None, None
    else:
        bootstrap, principal, ca = kafka.bootstrap, kafka.principal, kafka.settings.ca_file
    loop = asyncio.get_running_loop()

    warned = False

    def warn() -> None:
        nonlocal warned
        warned = True
        log.warning("kafka_not_answering", bootstrap=bootstrap, waited_s=NOT_ANSWERING_AFTER_S)

    handle = loop.call_later(NOT_ANSWERING_AFTER_S, warn)

    def answered() -> None:
        nonlocal handle
        handle.cancel()
        if not warned:  # once a block: slow starts that each answer are not a new silence
            handle = loop.call_later(NOT_ANSWERING_AFTER_S, warn)

    what = f"connecting to Kafka at {bootstrap}"
    if doing is not None:
        what = f"{doing}: {what}"
    try:
        async with _translating(what, principal, ca, ca_known=True, connecting=True):
            yield answered
    finally:
        handle.cancel()


def access_denied(exc: BaseException) -> bool:
    """Whether ``exc`` (a ``TransportError``, say) came of Kafka's ACLs refusing the request,
    somewhere in its chain: its cause (``raise ... from``) or, without one, the error being
    handled when it was raised (a translation that forgot ``from``), unless raised
    ``from None``. Told by the kind of aiokafka error, not by how a message words it.
    Sending it again cannot help until a grant changes."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:  # a chain can lead back to itself
        seen.add(id(link))
        if isinstance(link, _DENIED):
            return True
        # As traceback reads a chain: ``raise ... from None`` sets __suppress_context__, so
        # the error being handled then is not this one's reason.
        if link.__cause__ is not None:
            link = link.__cause__
        elif link.__suppress_context__:
            link = None
        else:
            link = link.__context__
    return False


def refused_access(exc: KafkaError, principal: str | None) -> str:
    """What Kafka's ACLs refused ``principal``: a suspended party, or a principal asking
    for what its grants do not cover (docs/operations.md, What each principal may do)."""
    who = principal or "this login"
    why = "no grant allows it (a suspended party holds none; docs/operations.md, What each "
    why += "principal may do)"
    if isinstance(exc, ClusterAuthorizationFailedError):
        # Met first by a producer starting: Kafka lets one start only for a login that may
        # write to some topic.
        return f"Kafka refused {who} the right to write (a producer needs it): {why}"
    names = sorted(_names(exc.args))
    noun = {
        TopicAuthorizationFailedError: "topic",
        GroupAuthorizationFailedError: "consumer group",
        TransactionalIdAuthorizationFailed: "transactional id",
    }.get(type(exc), "resource")
    if names:
        tried = f"the {noun}{'s' if len(names) > 1 else ''} {', '.join(names)}"
    else:
        tried = f"the {noun} it asked for"
    return f"Kafka refused {who} {tried}: {why}"


def _names(args: tuple[Any, ...]) -> set[str]:
    """Topic, group or transactional id names aiokafka put in an exception's arguments (one,
    or a collection of them); nothing else it may have put there."""
    out: set[str] = set()
    for arg in args:
        items = arg if isinstance(arg, set | frozenset | list | tuple) else [arg]
        out |= {i for i in items if isinstance(i, str) and i and " " not in i}
    return out


async def stop_quietly(client: Any) -> None:
    """Stop a client on the way out; a failure to stop must not hide the error (or the clean
    exit) that got us here.

    That includes a ``CancelledError`` of aiokafka's own: a consumer stopped while Kafka is
    away lets its fetch task's cancellation out of ``stop()``, and it replaced the
    ``TransportError`` the worker was stopping for with a page of traceback. Only when this
    task itself is being cancelled does the cancellation go on."""
    try:
        await client.stop()
    except (KafkaError, OSError):
        pass
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        # Cut short, its connections and background tasks would go on: aiokafka marked it
        # closed first, so a second stop does nothing (review r45b).
        if hasattr(client, "_fetcher"):
            await abandon_consumer(client, within=CLOSE_WAIT_S)


# Stops that may outlive their waiter (stop_bounded's, stop_in_background's): asyncio keeps
# only weak references to tasks, and one that is not held can be collected mid-run.
_stopping: set[asyncio.Task[None]] = set()


def stop_in_background(stop: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """``stop`` (a client's stop, or its abandoning) as a task held until it ends, for a
    caller that waits for it only so long and then goes on without it (:func:`left_running`
    then)."""
    task = asyncio.create_task(stop)
    _stopping.add(task)
    task.add_done_callback(_stopping.discard)
    return task


def left_running(stopping: asyncio.Task[None], client_id: object = None) -> None:
    """A stop from :func:`stop_in_background` that nobody will await: what it raises past
    ``stop_quietly`` (a bug, not Kafka) is logged once, by type only, not printed by asyncio
    with its text (which may quote a record)."""
    stopping.add_done_callback(functools.partial(_report_left, client_id))


async def stop_bounded(client: Any, seconds: float | None = None) -> bool:
    """:func:`stop_quietly`, waiting at most ``seconds`` (``CLOSE_WAIT_S`` when not given):
    whether the stop finished. Past that it goes on in the background, not cancelled (a stop
    cut short leaves its connections open); the process's end cancels it if it is still
    running then. This returning early, or being cancelled, never cancels the stop.

    For consumers, whose stop delivers nothing: a producer's may still be sending what it
    was given (``abandon`` is the way to give that up). Accord's consumers never commit on
    their own (``enable_auto_commit`` off), so a stop left running loses no commit; and
    aiokafka's stop closes the connections, where the TLS wait is, last: after leaving the
    group (and, with auto-commit, after its last commit).
    """
    wait = CLOSE_WAIT_S if seconds is None else seconds
    client_id = getattr(getattr(client, "_client", None), "_client_id", None)
    stopping = stop_in_background(stop_quietly(client))
    try:
        done, _ = await asyncio.wait([stopping], timeout=wait)
    except BaseException:  # cancelled: the stop goes on, awaited by nobody
        left_running(stopping, client_id)
        raise
    if done:
        stopping.result()  # what stop_quietly lets through (a bug, not Kafka) is raised
        return True
    left_running(stopping, client_id)
    log.debug("kafka_stop_left_running", client_id=client_id, waited_s=wait)
    return False


def _report_left(client_id: object, stopping: asyncio.Future[None]) -> None:
    """A stop left running is awaited by nobody: what it raises past ``stop_quietly`` (a
    bug, not Kafka) is logged once, by type only (its text may quote a record)."""
    if stopping.cancelled():
        return
    error = stopping.exception()
    if error is not None:
        log.warning(
            "kafka_stop_failed_in_background", client_id=client_id, error=type(error).__name__
        )


async def abort_quietly(producer: Any) -> bool:
    """Abort a transaction after a failed commit, best effort: whether Kafka confirmed it.

    After a fence the producer is in a fatal state and aiokafka refuses the abort with an
    AssertionError; the commit's own error is the one to report.
    """
    try:
        await producer.abort_transaction()
    except (KafkaError, AssertionError, OSError):
        return False
    return True


async def abandon(producer: Any) -> None:
    """Close a producer without delivering what it still holds: nothing it was given is sent
    (or retried) after this begins.

    aiokafka's ``stop`` first waits for every pending batch to be delivered, and an
    idempotent producer retries a batch whose partition leader it knows without limit: with
    Kafka down, a send given up on would sit in the producer and be written once Kafka came
    back. So its sender task is cancelled first, again and again, because on cancellation it
    awaits each of its requests in turn (a transactional one may be looking for a
    coordinator forever); each cancel ends the one it awaits. Then its batches are failed,
    so ``stop`` has nothing to wait for. A request Kafka had already received may still be
    written: only a transaction never committed is sure to stay unseen (read_committed).
    A fake producer (unit tests) is only stopped.
    """
    sender = getattr(producer, "_sender", None)
    task = getattr(sender, "sender_task", None)
    while task is not None and not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=0.1)
    if task is not None and not task.cancelled():
        task.exception()  # retrieved: a sender that had failed is not reported again at exit
    accumulator = getattr(producer, "_message_accumulator", None)
    if accumulator is not None:
        # aiokafka's internals (this is the seam that knows them): its queued batches and
        # those sent and not yet answered.
        queued = [b for q in accumulator._batches.values() for b in q]
        batches = [*queued, *accumulator._pending_batches]
        # A batch sent once and put back to retry (Kafka unreachable) is queued, yet its
        # future still carries the callback that takes it out of the pending set when it
        # ends: failed while queued, that callback's KeyError is logged as "Exception in
        # callback MessageAccumulator._pop_batch". Failed as pending, each callback finds
        # its batch; a batch never sent has no callback, and the set goes with the producer.
        accumulator._batches.clear()
        accumulator._pending_batches.update(queued)
        accumulator.fail_all(Abandoned())
        # Nobody waits for them now: retrieved, so asyncio does not print each at exit.
        for batch in batches:
            for waiter in [batch.future, batch._drain_waiter, *(f for f, _ in batch._msg_futures)]:
                if waiter.done() and not waiter.cancelled():
                    waiter.exception()
    # A transactional producer whose sender failed (fenced) holds that failure for whoever
    # ends the transaction; one given up before its commit has nobody to end it.
    transaction_end = getattr(getattr(producer, "_txn_manager", None), "_transaction_waiter", None)
    if isinstance(transaction_end, asyncio.Future):
        transaction_end.add_done_callback(_retrieve)
    await stop_quietly(producer)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


async def abandon_consumer(consumer: Any, *, within: float) -> None:
    """Close a consumer whose ``stop`` did not finish (Kafka not answering), without waiting
    for Kafka: it leaves its group unannounced (the group coordinator drops it after its
    session timeout), and nothing it would still have committed is.

    aiokafka's ``stop`` waits for the group coordinator's routine and a LeaveGroup answer,
    each retried for as long as no broker answers. Its stop, cancelled, has marked it
    closed; here its background tasks are cancelled and its connections closed, so that
    neither a task nor a socket is left to be reported at exit. ``within`` bounds the wait
    for each (a TLS connection's close waits for the peer's goodbye). A fake consumer (unit
    tests) has none of these and is left as it is.
    """
    coordinator = getattr(consumer, "_coordinator", None)
    fetcher = getattr(consumer, "_fetcher", None)
    # aiokafka's internals (this seam knows them, as ``abandon`` does the producer's).
    names = ("_coordination_task", "_heartbeat_task", "_commit_refresh_task")
    candidates = [getattr(coordinator, n, None) for n in names]
    candidates += [getattr(coordinator, "_reset_committed_task", None)]
    candidates += [getattr(fetcher, "_fetch_task", None)]
    tasks = [t for t in candidates if isinstance(t, asyncio.Task) and not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=within)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: not reported again at exit
    client = getattr(consumer, "_client", None)
    if client is not None:
        with contextlib.suppress(TimeoutError, KafkaError, OSError):
            async with asyncio.timeout(within):
                await client.close()


def quiet_leftovers(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """An event-loop exception handler for long-running processes and the CLI's commands.

    Once a commit fails, aiokafka's sender leaves futures holding the same error behind;
    asyncio would print each with a traceback at exit, burying the one line that says why
    the process stopped. They are logged as one short line each instead.
    """
    exc = context.get("exception")
    message = str(context.get("message"))
    if isinstance(exc, KafkaError) and "never retrieved" in message:
        log.debug("kafka_future_unretrieved", error=type(exc).__name__)
        return
    if _closed_tls_leftover(message, exc) or _late_close_notify(message, exc):
        log.debug("tls_connection_closed_late", error=type(exc).__name__)
        return
    loop.default_exception_handler(context)


def _closed_tls_leftover(message: str, exc: object) -> bool:
    """A TLS protocol told to write on a connection already closed: aiokafka closes a broker
    connection (a rebalance's coordinator not ready yet, say) while its TLS layer still has a
    step to take. uvloop reports that as "Fatal error on SSL protocol" with a RuntimeError
    and a traceback at level error, on a healthy start; asyncio's own TLS layer reports such
    errors as OSErrors, at debug. Nothing is lost: the client has moved on to a new
    connection. A real TLS failure (a handshake, a certificate) is not a RuntimeError about
    a closed transport, and still goes to the default handler."""
    return (
        message.startswith("Fatal error on SSL protocol")
        and isinstance(exc, RuntimeError)
        and "closed" in str(exc)
    )


def _late_close_notify(message: str, exc: object) -> bool:
    """A future nobody awaited, failed because a broker's data reached a TLS connection
    after this side had sent its close_notify: aiokafka closed the connection (a one-shot
    command done with Kafka) while the broker was still sending, and nothing reads from it
    any more. Nothing is lost; any other TLS error still goes to the default handler."""
    return (
        "never retrieved" in message
        and isinstance(exc, ssl.SSLError)
        and getattr(exc, "reason", None) == "APPLICATION_DATA_AFTER_CLOSE_NOTIFY"
    )
