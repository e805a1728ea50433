"""A refused login or an untrusted certificate is said as such, not as Kafka being down.

aiokafka logs why each attempt to connect failed and raises a bare KafkaConnectionError;
librdkafka reports the reason to its error callback only. These fakes do as each does.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed
from confluent_kafka import KafkaError, KafkaException
from pydantic import SecretStr

from broker.config import KafkaSettings
from broker.errors import TransportError
from broker.kafka import KafkaClients, connecting
from broker.kafka._access import _Refusals, _wait

SECRET = "s3cret-Pa55word"  # a test password, asserted never to be printed


def _clients(ca: Path | None = None) -> KafkaClients:
    settings = KafkaSettings(
        bootstrap="127.0.0.1:9093", username="cog-tipton", password=SecretStr(SECRET), ca_file=ca
    )
    return KafkaClients(settings)


async def _fails_after_logging(cause: BaseException) -> None:
    """What aiokafka's bootstrap does: log the attempt's error, raise without a cause."""
    logging.getLogger("aiokafka").error('Unable connect to "%s:%s": %s', "h", 1, cause)
    raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 9093, <AF_INET>)]")


@pytest.fixture
def quiet_aiokafka() -> Any:
    """aiokafka at CRITICAL, as ``accord``'s main() leaves it."""
    logger = logging.getLogger("aiokafka")
    before = logger.level
    logger.setLevel(logging.CRITICAL)
    yield logger
    logger.setLevel(before)


async def test_a_refused_login_names_the_principal_never_the_password(
    quiet_aiokafka: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(TransportError) as refused:
        async with connecting(_clients()):
            await _fails_after_logging(SaslAuthenticationFailed("invalid credentials"))
    assert str(refused.value) == (
        "connecting to Kafka at 127.0.0.1:9093: Kafka refused the login for cog-tipton "
        "(wrong password?)"
    )
    out, err = capsys.readouterr()
    assert SECRET not in str(refused.value) + out + err
    assert err == ""  # aiokafka stays as quiet as the CLI left it
    assert quiet_aiokafka.level == logging.CRITICAL  # and is left so
    assert quiet_aiokafka.propagate
    assert not quiet_aiokafka.handlers


async def test_a_refused_login_through_a_bootstrap_address_alone_is_said_too(
    quiet_aiokafka: logging.Logger,
) -> None:
    with pytest.raises(TransportError, match=r"9093: Kafka refused the login \(wrong password"):
        async with connecting("127.0.0.1:9093"):
            await _fails_after_logging(SaslAuthenticationFailed("invalid credentials"))


async def test_a_certificate_that_does_not_verify_names_the_ca_file(
    quiet_aiokafka: logging.Logger, tmp_path: Path
) -> None:
    bad = ssl.SSLCertVerificationError(1, "certificate verify failed")
    bad.verify_message = "self-signed certificate in certificate chain"
    ca = tmp_path / "ca.pem"
    with pytest.raises(TransportError) as refused:
        async with connecting(_clients(ca)):
            await _fails_after_logging(bad)
    assert str(refused.value).endswith(
        f"TLS: the broker's certificate does not verify against {ca} "
        "(self-signed certificate in certificate chain)"
    )


async def test_kafka_being_down_is_still_said_as_before(quiet_aiokafka: logging.Logger) -> None:
    refused = ConnectionRefusedError(111, "Connect call failed")
    with pytest.raises(TransportError) as down:
        async with connecting(_clients()):
            await _fails_after_logging(refused)
    assert str(down.value) == "connecting to Kafka at 127.0.0.1:9093: KafkaConnectionError"


async def test_a_long_running_command_still_sees_aiokafkas_errors(
    quiet_aiokafka: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    """The worker turns aiokafka's log on: connecting() must pass it on, not swallow it."""
    quiet_aiokafka.setLevel(logging.NOTSET)  # as configure_logging does
    with caplog.at_level(logging.WARNING), pytest.raises(TransportError):
        async with connecting(_clients()):
            await _fails_after_logging(SaslAuthenticationFailed("invalid credentials"))
    assert any(r.name == "aiokafka" and "Unable connect" in r.getMessage() for r in caplog.records)


def _auth_error() -> KafkaError:
    return KafkaError(KafkaError._AUTHENTICATION, "SASL authentication error: invalid credentials")


class _Admin:
    def __init__(self, refusals: _Refusals, errors: list[KafkaError]) -> None:
        self.refusals, self.errors = refusals, errors

    def poll(self, _timeout: float) -> None:
        for error in self.errors:  # librdkafka serves queued callbacks at a poll
            self.refusals(error)


def test_librdkafka_refusing_the_admin_login_is_said_as_such() -> None:
    settings = KafkaSettings(username="admin", password=SecretStr(SECRET))
    refusals = _Refusals(settings)
    assert refusals.reason(_Admin(refusals, [])) is None  # nothing known: transport failure
    transport = KafkaError(KafkaError._TRANSPORT, "Connection refused")
    assert refusals.reason(_Admin(refusals, [transport])) is None
    reason = refusals.reason(_Admin(refusals, [_auth_error()]))
    assert reason == "Kafka refused the login for admin (wrong password?)"


def test_librdkafka_failing_to_verify_the_certificate_names_the_ca() -> None:
    settings = KafkaSettings(username="admin", password=SecretStr(SECRET), ca_file=Path("/x.pem"))
    refusals = _Refusals(settings)
    ssl_error = KafkaError(KafkaError._SSL, "SSL handshake failed: certificate verify failed")
    reason = refusals.reason(_Admin(refusals, [ssl_error]))
    assert reason == "TLS: the broker's certificate does not verify against /x.pem"


class _Future:
    def result(self, **_: float) -> None:
        raise KafkaException(_auth_error())


def test_an_admin_request_refused_for_the_login_says_so() -> None:
    refusals = _Refusals(KafkaSettings(username="admin", password=SecretStr(SECRET)))
    with pytest.raises(TransportError) as refused:
        _wait([_Future()], "adding ACLs", refusals)
    assert str(refused.value) == "adding ACLs: Kafka refused the login for admin (wrong password?)"
