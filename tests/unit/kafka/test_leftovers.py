"""The long-running processes' event-loop exception handler: leftovers of connections the
Kafka client already gave up are one debug line, anything else goes to asyncio's handler."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from aiokafka.errors import KafkaError
from structlog.testing import capture_logs

from broker.kafka import quiet_leftovers

# What uvloop's TLS protocol says when aiokafka has closed the connection under it.
CLOSED = RuntimeError(
    "unable to perform operation on <TCPTransport closed=True reading=False 0x7f>; "
    "the handler is closed"
)


class _Loop:
    def __init__(self) -> None:
        self.passed_on: list[dict[str, Any]] = []

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        self.passed_on.append(context)


def _handle(context: dict[str, Any]) -> tuple[_Loop, list[dict[str, Any]]]:
    loop = _Loop()
    with capture_logs() as logs:
        quiet_leftovers(loop, context)  # type: ignore[arg-type]
    return loop, logs


def test_a_tls_protocol_writing_on_a_closed_connection_is_one_debug_line() -> None:
    loop, logs = _handle(
        {
            "message": "Fatal error on SSL protocol\nprotocol: <uvloop.loop.SSLProtocol>",
            "exception": CLOSED,
        }
    )
    assert loop.passed_on == []
    assert logs == [
        {"event": "tls_connection_closed_late", "error": "RuntimeError", "log_level": "debug"}
    ]


def test_a_real_tls_failure_still_goes_to_asyncios_handler() -> None:
    failure = ssl.SSLError(1, "certificate verify failed")
    loop, logs = _handle({"message": "Fatal error on SSL protocol", "exception": failure})
    assert [c["exception"] for c in loop.passed_on] == [failure]
    assert logs == []


def test_another_runtime_error_still_goes_to_asyncios_handler() -> None:
    other = RuntimeError("Event loop is closed")
    loop, _ = _handle({"message": "Task exception was never retrieved", "exception": other})
    assert len(loop.passed_on) == 1


def test_a_kafka_future_never_retrieved_is_one_debug_line() -> None:
    loop, logs = _handle(
        {"message": "Future exception was never retrieved", "exception": KafkaError()}
    )
    assert loop.passed_on == []
    assert [e["event"] for e in logs] == ["kafka_future_unretrieved"]


def test_it_is_a_valid_event_loop_exception_handler() -> None:
    loop = asyncio.new_event_loop()
    try:
        loop.set_exception_handler(quiet_leftovers)
        with capture_logs() as logs:
            loop.call_exception_handler(
                {"message": "Fatal error on SSL protocol", "exception": CLOSED}
            )
    finally:
        loop.close()
    assert [e["event"] for e in logs] == ["tls_connection_closed_late"]


def _close_notify() -> ssl.SSLError:
    err = ssl.SSLError(
        1, "[SSL: APPLICATION_DATA_AFTER_CLOSE_NOTIFY] application data after close notify"
    )
    err.reason = "APPLICATION_DATA_AFTER_CLOSE_NOTIFY"
    return err


def test_a_future_never_retrieved_holding_a_late_close_notify_is_one_debug_line() -> None:
    loop, logs = _handle(
        {"message": "Future exception was never retrieved", "exception": _close_notify()}
    )
    assert loop.passed_on == []
    assert logs == [
        {"event": "tls_connection_closed_late", "error": "SSLError", "log_level": "debug"}
    ]


def test_a_late_close_notify_reported_otherwise_still_goes_to_asyncios_handler() -> None:
    loop, logs = _handle({"message": "Fatal error on SSL protocol", "exception": _close_notify()})
    assert len(loop.passed_on) == 1
    assert logs == []


def test_another_tls_error_never_retrieved_still_goes_to_asyncios_handler() -> None:
    other = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    other.reason = "WRONG_VERSION_NUMBER"
    loop, logs = _handle({"message": "Future exception was never retrieved", "exception": other})
    assert len(loop.passed_on) == 1
    assert logs == []
