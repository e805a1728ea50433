"""Small helpers for tests that talk to the real broker.

Every broker the tests start is secured as a deployment is (TLS, SCRAM logins, ACLs): tests
reach it as its ``admin`` (the super user) unless they act as a principal on purpose.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aiokafka.admin import NewTopic
from pydantic import SecretStr

from broker.config import KafkaSettings
from broker.devkafka import free_port
from broker.kafka import KafkaClients, TopicPartition, read_client_file

_ADMIN: dict[str, KafkaSettings] = {}


def register(admin: KafkaSettings) -> None:
    """Remember how to reach the broker at ``admin.bootstrap`` as its admin."""
    _ADMIN[admin.bootstrap] = admin


def admin_settings(bootstrap: str) -> KafkaSettings:
    return _ADMIN[bootstrap]


def settings_as(bootstrap: str, principal: str) -> KafkaSettings:
    """How ``principal`` reaches the broker: its client file (made by provisioning)."""
    admin = _ADMIN[bootstrap]
    if principal == "admin" or admin.credentials_dir is None:
        return admin
    conf = read_client_file(admin.credentials_dir / f"{principal}.librdkafka.conf")
    return admin.model_copy(
        update={"username": conf["sasl.username"], "password": SecretStr(conf["sasl.password"])}
    )


def clients(bootstrap: str, principal: str = "admin") -> KafkaClients:
    """Accord's Kafka clients for the test broker at ``bootstrap``, as ``principal``."""
    return KafkaClients(settings_as(bootstrap, principal))


def kafka_env(bootstrap: str) -> dict[str, str]:
    """Environment for an ``accord`` subprocess: each command logs in as the principal it
    acts for, from the broker's client files."""
    admin = _ADMIN[bootstrap]
    env = {"ACCORD_KAFKA_BOOTSTRAP": bootstrap}
    if admin.credentials_dir is not None:
        env["ACCORD_KAFKA__CREDENTIALS_DIR"] = str(admin.credentials_dir)
    return env


def admin_env(bootstrap: str) -> dict[str, str]:
    """Environment for an ``accord`` subprocess that logs in as the admin whatever it acts
    as: for tests of other things than access (parties no bundle provisioned)."""
    admin = _ADMIN[bootstrap]
    env = {"ACCORD_KAFKA_BOOTSTRAP": bootstrap}
    if admin.username is not None and admin.password is not None:
        env["ACCORD_KAFKA__USERNAME"] = admin.username
        env["ACCORD_KAFKA__PASSWORD"] = admin.password.get_secret_value()
    if admin.ca_file is not None:
        env["ACCORD_KAFKA__CA_FILE"] = str(admin.ca_file)
    return env


def credentials_dir(bootstrap: str) -> Path | None:
    return _ADMIN[bootstrap].credentials_dir


def unique_topic(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def create_topics(
    bootstrap: str, names: list[str], *, partitions: int = 1, config: dict[str, str] | None = None
) -> None:
    admin = clients(bootstrap).admin()
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(n, partitions, 1, topic_configs=config or {}) for n in names]
        )
    finally:
        await admin.close()


async def read_to_end(
    bootstrap: str, topic: str, *, isolation: str = "read_committed", within_s: float = 60.0
) -> list[Any]:
    """Every record of ``topic`` up to its end offsets when called, in each partition's order.

    Reads until every position reaches those offsets (under ``read_committed``, the last stable
    offset), never "until a quiet poll": a broker pausing for a second on a busy machine must
    not cut the read short. Fails, rather than hangs, if the end is not reached in time.
    """
    # The end is known, so a fetch has nothing to wait for; and the broker answers one
    # connection's requests in turn, so each offsets request and the stop waited behind a
    # long-polled fetch of an empty partition: 1.6 s to read an empty topic at 500 ms, 0.2 s.
    consumer = clients(bootstrap).consumer(
        client_id="test-read", isolation_level=isolation, fetch_max_wait_ms=20
    )
    await consumer.start()
    out: list[Any] = []
    try:
        if topic not in await consumer.topics():
            return out  # not created yet: nothing in it
        consumer.subscribe([topic])  # without a group: every partition, once metadata is in
        deadline = time.monotonic() + within_s
        while not consumer.assignment():
            assert time.monotonic() < deadline, f"{topic}: no partitions assigned in {within_s} s"
            await asyncio.sleep(0.05)
        tps = sorted(consumer.assignment(), key=lambda tp: tp.partition)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        for tp in tps:
            while await consumer.position(tp) < end[tp]:
                assert time.monotonic() < deadline, f"{topic} not read to its end in {within_s} s"
                batch = await consumer.getmany(tp, timeout_ms=500)
                out += batch.get(tp, [])
    finally:
        await consumer.stop()
    return out


def tries_within(within_s: float) -> Iterator[int]:
    """The tries of a wait loop, numbered, until ``within_s`` seconds have passed (the first
    always): the loop breaks or returns once done, and sleeps between tries itself.

    A wait bounded by a count of tries has patience that shrinks with the time a try takes:
    read_to_end's shorter long poll took a 240-try wait on the audit from ~8 minutes to ~3.
    """
    deadline = time.monotonic() + within_s
    tried = 0
    yield tried
    while time.monotonic() < deadline:
        tried += 1
        yield tried


def provisioned(bootstrap: str, policy: Any) -> None:
    """Topics, logins and ACLs for ``policy``'s parties and the services, as the admin does
    it (``accord kafka provision``): each test process then logs in as its own principal."""
    from broker.provision import provision

    admin = _ADMIN[bootstrap]
    assert admin.credentials_dir is not None
    provision(policy, admin, clients_dir=admin.credentials_dir)


def envelope_key(value: bytes) -> bytes | None:
    """The key the SDK gives an input record: its envelope's event id (the worker quarantines
    an envelope keyed otherwise as ``wrong-partition``); None for what is no envelope."""
    from broker.envelope import read_header
    from broker.errors import EnvelopeError

    try:
        return read_header(value).event_id.encode("ascii")
    except EnvelopeError:
        return None


def free_client_port() -> int:
    """A loopback port free now whose next port is free too (``accord kafka up`` takes both)."""
    while True:
        port = free_port()
        with socket.socket() as second:
            try:
                second.bind(("127.0.0.1", port + 1))
            except (OSError, OverflowError):
                continue
            return port


class CountingHashlib:
    """aiokafka's ``hashlib``, counting PBKDF2 runs."""

    def __init__(self) -> None:
        self.pbkdf2_runs = 0

    def pbkdf2_hmac(self, *args: Any) -> bytes:
        self.pbkdf2_runs += 1
        return hashlib.pbkdf2_hmac(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(hashlib, name)


class SlowToClose:
    """A group-less consumer of one empty partition, read to its end; its stop never returns,
    as a close over TLS can wait 30 s for a Kafka broker that never answers its close_notify
    (``broker.kafka.stop_bounded``)."""

    def __init__(self, topic: str) -> None:
        self.tp = TopicPartition(topic, 0)
        self.stop_begun = asyncio.Event()

    async def start(self) -> None:
        pass

    async def topics(self) -> set[str]:
        return {self.tp.topic}

    def subscribe(self, topics: list[str]) -> None:
        pass

    def assignment(self) -> set[TopicPartition]:
        return {self.tp}

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        pass

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(partitions, 0)

    async def position(self, tp: TopicPartition) -> int:  # noqa: ARG002  # the Consumer's
        return 0

    async def stop(self) -> None:
        self.stop_begun.set()
        await asyncio.Event().wait()


class OneConsumerKafka:
    """``KafkaClients`` as far as a reader of retained records uses it: one consumer."""

    bootstrap = "kafka.test:9093"

    def __init__(self, consumer: SlowToClose) -> None:
        self._consumer = consumer

    def consumer(self, *topics: str, **options: Any) -> SlowToClose:  # noqa: ARG002
        return self._consumer
