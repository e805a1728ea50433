"""A request Kafka's ACLs refuse reads as a refusal of the principal, naming what it asked
for, not as aiokafka's exception name (an operator's review: a suspended party publishing
saw 'connecting to Kafka at ...: ClusterAuthorizationFailedError')."""

from __future__ import annotations

import pytest
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    UnknownTopicOrPartitionError,
)
from pydantic import SecretStr

from broker.config import KafkaSettings
from broker.errors import TransportError
from broker.kafka import KafkaClients, access_denied, connecting, translated
from broker.kafka._errors import Abandoned

WHY = "no grant allows it (a suspended party holds none; docs/operations.md, What each "
WHY += "principal may do)"


async def test_a_producer_refused_at_its_start_names_the_principal_and_the_right_to_write() -> None:
    swbh = KafkaClients(
        KafkaSettings(bootstrap="127.0.0.1:19192", username="swbh", password=SecretStr("pw"))
    )
    with pytest.raises(TransportError) as refused:
        async with connecting(swbh):
            raise ClusterAuthorizationFailedError()
    assert str(refused.value) == (
        "connecting to Kafka at 127.0.0.1:19192: Kafka refused swbh the right to write "
        f"(a producer needs it): {WHY}"
    )


@pytest.mark.parametrize(
    ("error", "tried"),
    [
        (TopicAuthorizationFailedError({"accord.ingress.swbh"}), "the topic accord.ingress.swbh"),
        (TopicAuthorizationFailedError({"b", "a"}), "the topics a, b"),
        (TopicAuthorizationFailedError("accord.audit"), "the topic accord.audit"),
        (TopicAuthorizationFailedError(), "the topic it asked for"),
        (GroupAuthorizationFailedError("swbh.tail"), "the consumer group swbh.tail"),
        (
            TransactionalIdAuthorizationFailed("accord-worker.x"),
            "the transactional id accord-worker.x",
        ),
    ],
)
async def test_each_refusal_names_what_was_refused(error: Exception, tried: str) -> None:
    with pytest.raises(TransportError) as refused:
        async with translated("publishing to accord.ingress.swbh", principal="swbh"):
            raise error
    assert (
        str(refused.value)
        == f"publishing to accord.ingress.swbh: Kafka refused swbh {tried}: {WHY}"
    )
    with pytest.raises(TransportError, match=r"^reading: Kafka refused this login "):
        async with translated("reading"):
            raise error


async def test_other_kafka_errors_are_still_named_as_before() -> None:
    with pytest.raises(TransportError, match=r"^reading: UnknownTopicOrPartitionError$"):
        async with translated("reading", principal="swbh"):
            raise UnknownTopicOrPartitionError()
    with pytest.raises(TransportError, match=r"^reading: Kafka did not answer in time$"):
        async with translated("reading", principal="swbh"):
            raise KafkaTimeoutError()


async def test_no_connection_is_said_in_words_not_as_a_class_name() -> None:
    """Walkthrough: Kafka down read "connecting to Kafka at ...: KafkaConnectionError"."""
    with pytest.raises(TransportError) as failed:
        async with translated("reading accord.audit from 127.0.0.1:19399", principal="swbh"):
            raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 19399)]")
    assert str(failed.value) == (
        "reading accord.audit from 127.0.0.1:19399: could not reach Kafka: no connection, or "
        "no answer"
    )
    with pytest.raises(TransportError) as failed:
        async with connecting("127.0.0.1:19399"):
            raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 19399)]")
    assert (
        str(failed.value) == "connecting to Kafka at 127.0.0.1:19399: no connection, or no answer"
    )


async def test_an_abandoned_producers_sends_say_so_not_that_kafka_is_unreachable() -> None:
    with pytest.raises(TransportError) as failed:
        async with translated("publishing to accord.ingress.swbh"):
            raise Abandoned()
    assert str(failed.value) == "publishing to accord.ingress.swbh: the producer was abandoned"


def _raised_while_handling(refusal: BaseException) -> TransportError:
    """A translation that forgot ``from``: the refusal is only the error's context."""
    try:
        try:
            raise refusal
        except KafkaError:
            raise TransportError("publishing: refused")  # noqa: B904  # the forgotten from
    except TransportError as exc:
        return exc


def test_access_denied_follows_an_errors_context_as_well_as_its_cause() -> None:
    """One rule for the CLI and the gateway (whose 503 kafka_refused relies on it)."""
    assert access_denied(_raised_while_handling(TopicAuthorizationFailedError("t")))
    assert not access_denied(_raised_while_handling(KafkaTimeoutError()))


def test_access_denied_does_not_follow_a_context_raised_from_none() -> None:
    """``raise ... from None`` says the error being handled is not the reason (as traceback
    reads it), so a refusal there does not make this an ACL matter."""
    try:
        try:
            raise TopicAuthorizationFailedError("t")
        except KafkaError:
            raise TransportError("deliberately not an ACL matter") from None
    except TransportError as exc:
        translated = exc
    assert translated.__context__ is not None  # hidden, not gone: access_denied must skip it
    assert not access_denied(translated)


def test_access_denied_ends_on_a_chain_that_leads_back_to_itself() -> None:
    first, second = TransportError("a"), TransportError("b")
    first.__cause__, second.__cause__ = second, first
    assert not access_denied(first)
