"""Which logged cause a failed connection is said as: only a recent one, the latest of them,
and not one pushed out by other errors; and switching aiokafka's logger to keep them never
drops nor shows a record the application's level would not (review s42r8)."""

from __future__ import annotations

import logging
import ssl

import pytest
from aiokafka.errors import KafkaConnectionError, NodeNotReadyError, SaslAuthenticationFailed

from broker.errors import TransportError
from broker.kafka import _causes as causes_module
from broker.kafka import translated
from broker.kafka._causes import CAUSES_FRESH_S, keeping_causes

CLIENT_LOG = logging.getLogger("aiokafka")  # aiokafka.client logs as "aiokafka"
NOT_REACHED = "could not reach Kafka: no connection, or no answer"
TLS_EOF = "TLS: the handshake failed (UNEXPECTED_EOF_WHILE_READING; a TLS port?)"
LOGIN = "Kafka refused the login (wrong password?)"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    made = Clock()
    monkeypatch.setattr(causes_module, "_now", made)
    return made


def _eof() -> ssl.SSLError:
    eof = ssl.SSLEOFError(8, "EOF occurred in violation of protocol")
    eof.reason = "UNEXPECTED_EOF_WHILE_READING"
    return eof


def _logged(exc: BaseException) -> None:
    """As aiokafka logs a failed attempt to connect."""
    CLIENT_LOG.error("Unable connect to node with id %s: %s", 1, exc)


async def _said(
    clock: Clock, *steps: BaseException | float, failure: Exception | None = None
) -> str:
    """What a block says that logs each cause (a number: that many seconds pass) and then
    fails with ``failure`` (aiokafka's bare "Unable to bootstrap" when not given)."""

    async def block() -> None:
        async with translated("indexing accord.audit"):
            for step in steps:
                if isinstance(step, BaseException):
                    _logged(step)
                else:
                    clock.now += step
            raise failure or KafkaConnectionError("Unable to bootstrap from [('kafka', 9093)]")

    with pytest.raises(TransportError) as failed:
        await block()
    return str(failed.value).removeprefix("indexing accord.audit: ")


async def test_a_cause_recovered_from_longer_ago_than_a_request_is_not_blamed(
    clock: Clock,
) -> None:
    """An indexer's TLS hiccup of minutes ago does not explain Kafka refusing it now."""
    refused = ConnectionRefusedError(111, "Connection refused")
    assert await _said(clock, _eof(), CAUSES_FRESH_S + 1, refused) == NOT_REACHED
    old_login = SaslAuthenticationFailed("rotation in progress")
    assert await _said(clock, old_login, CAUSES_FRESH_S + 1, refused) == NOT_REACHED
    assert await _said(clock, _eof(), CAUSES_FRESH_S - 1, refused) == TLS_EOF  # recent: said


async def test_the_latest_recent_cause_is_said_whatever_its_kind(clock: Clock) -> None:
    login = SaslAuthenticationFailed("refused")
    assert await _said(clock, login, 1.0, _eof()) == TLS_EOF
    assert await _said(clock, _eof(), 1.0, login) == LOGIN


async def test_other_logged_errors_do_not_push_a_cause_out(clock: Clock) -> None:
    refused = ConnectionRefusedError(111, "Connection refused")
    login = SaslAuthenticationFailed("refused")
    assert await _said(clock, login, *[refused] * 40) == LOGIN


async def test_a_later_request_that_finds_no_connection_is_said_in_words(clock: Clock) -> None:
    """aiokafka raises NodeNotReadyError, not KafkaConnectionError, for a request to a
    broker it cannot connect to: once read as the bare class name."""
    not_ready = NodeNotReadyError("Attempt to send a request to node which is not ready")
    assert await _said(clock, failure=not_ready) == NOT_REACHED
    assert await _said(clock, _eof(), failure=not_ready) == TLS_EOF


class _Probed(logging.Logger):
    """aiokafka's logger, logging an ERROR and a CRITICAL record after each change made to
    it: what another thread logging at that moment would see."""

    def __setattr__(self, name: str, value: object) -> None:
        super().__setattr__(name, value)
        if name in ("level", "propagate"):
            _probe(self, name)

    def addHandler(self, handler: logging.Handler) -> None:  # noqa: N802  # logging's name
        super().addHandler(handler)
        _probe(self, "addHandler")

    def removeHandler(self, handler: logging.Handler) -> None:  # noqa: N802
        super().removeHandler(handler)
        _probe(self, "removeHandler")


_probes: list[str] = []


def _probe(logger: logging.Logger, step: str) -> None:
    _probes.append(step)
    logger.error("probe ERROR after %s", step)
    logger.critical("probe CRITICAL after %s", step)


class _Seen(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.said: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "aiokafka":
            self.said.append(record.getMessage())


@pytest.mark.parametrize("level", [logging.CRITICAL, logging.WARNING])
def test_no_step_of_the_logger_switch_drops_a_record_or_shows_one_below_its_level(
    monkeypatch: pytest.MonkeyPatch, level: int
) -> None:
    """Once, between a block's switch steps, aiokafka's records reached logging's last
    resort (printed on a CLI user's terminal whatever its level)."""
    shown, last_resort = _Seen(), _Seen()
    monkeypatch.setattr(logging, "lastResort", last_resort)
    monkeypatch.setattr(CLIENT_LOG, "level", level)
    monkeypatch.setattr(CLIENT_LOG, "propagate", True)
    CLIENT_LOG.manager._clear_cache()  # type: ignore[attr-defined]  # logging's own
    logging.getLogger().addHandler(shown)
    monkeypatch.setattr(CLIENT_LOG, "__class__", _Probed)
    _probes.clear()
    try:
        with keeping_causes():
            pass
    finally:
        monkeypatch.setattr(CLIENT_LOG, "__class__", logging.Logger)
        logging.getLogger().removeHandler(shown)
    assert _probes  # the switch was watched
    assert last_resort.said == []
    for step in _probes:
        assert f"probe CRITICAL after {step}" in shown.said
        assert (f"probe ERROR after {step}" in shown.said) == (level <= logging.ERROR)
