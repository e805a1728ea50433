"""Every Kafka client Accord uses is built here, from ``KafkaSettings``.

Connection settings (the bootstrap address and, with Kafka security, TLS and credentials) are
applied in one method, :meth:`KafkaClients._common`, so no client can be made that skips them.
Processes receive a :class:`KafkaClients` (or a fake with the same methods, in unit tests)
rather than constructing aiokafka clients themselves.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Final

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.client import AIOKafkaClient
from aiokafka.conn import AIOKafkaConnection, collect_hosts
from aiokafka.errors import (
    KafkaError,
    NoError,
    OffsetOutOfRangeError,
    TopicAuthorizationFailedError,
    for_code,
)
from aiokafka.helpers import create_ssl_context
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.protocol.metadata import MetadataRequest

from broker.config import KafkaSecurity, KafkaSettings
from broker.errors import ConfigError
from broker.kafka._credentials import MECHANISM
from broker.kafka._errors import translated
from broker.kafka._protocols import Admin, Consumer, Producer, RebalanceListener, TopicPartition
from broker.kafka._scram import remember_salted_passwords
from broker.kafka._tolerant import read_partition

__all__ = ["KafkaClients", "partition_for", "warn_if_plaintext"]

_PARTITIONER = DefaultPartitioner()
_READ_COMMITTED = 1
_PARTITION_FETCH_BYTES = 1024 * 1024  # aiokafka's default max_partition_fetch_bytes


_M: Final = 0x5BD1E995
_MASK: Final = 0xFFFFFFFF
_words: dict[int, struct.Struct] = {}


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (``org.apache.kafka.common.utils.Utils.murmur2``), as an unsigned int.

    aiokafka's is the same arithmetic a byte at a time; unpacking the little-endian words in
    one call makes this about three times faster, and the worker places a few keys it has
    never seen (deliveries, replay ids) on every event.
    """
    n = len(data)
    h = 0x9747B28C ^ n
    words = _words.get(n >> 2)
    if words is None:
        words = _words[n >> 2] = struct.Struct(f"<{n >> 2}I")
    for word in words.unpack_from(data):
        k = (word * _M) & _MASK
        h = ((h * _M) & _MASK) ^ (((k ^ (k >> 24)) * _M) & _MASK)
    if rest := n & 3:
        tail = n & ~3
        if rest == 3:
            h ^= data[tail + 2] << 16
        if rest >= 2:
            h ^= data[tail + 1] << 8
        h = ((h ^ data[tail]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def partition_for(key: bytes | None, partitions: list[int]) -> int:
    """The partition the Java client (and aiokafka's ``send``) would choose for ``key``."""
    if key is None:  # no key: any partition, as the clients choose
        return int(_PARTITIONER(key, partitions, partitions))
    return partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """aiokafka accepts only its own listener class; this one forwards to ours."""

    def __init__(self, target: RebalanceListener) -> None:
        self._target = target

    async def on_partitions_revoked(self, revoked: list[Any]) -> None:
        await self._target.on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[Any]) -> None:
        await self._target.on_partitions_assigned(assigned)


class KafkaClients:
    """Builds producers, consumers and admin clients for one Kafka cluster."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self._security: dict[str, Any] | None = None

    @property
    def bootstrap(self) -> str:
        return self.settings.bootstrap

    @property
    def principal(self) -> str | None:
        """Who these clients log in as (None over PLAINTEXT: nobody)."""
        if self.settings.security_protocol is KafkaSecurity.PLAINTEXT:
            return None
        return self.settings.username

    def check_login(self) -> None:
        """Refuse now (``ConfigError``) a secured cluster with no login for this principal,
        rather than at the first connection."""
        self._secured()

    def _common(self, client_id: str) -> dict[str, Any]:
        return {
            "bootstrap_servers": self.settings.bootstrap,
            "client_id": client_id,
            **self._secured(),
        }

    def _secured(self) -> dict[str, Any]:
        """TLS and the principal's SCRAM login, for every client; built once."""
        if self._security is None:
            s = self.settings
            if s.security_protocol is KafkaSecurity.PLAINTEXT:
                self._security = {"security_protocol": "PLAINTEXT"}
            else:
                if s.username is None or s.password is None:
                    raise ConfigError(s.no_login())
                cafile = str(s.ca_file) if s.ca_file is not None else None
                try:
                    context = create_ssl_context(cafile=cafile)
                except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                    why = type(exc).__name__
                    if isinstance(exc, FileNotFoundError):
                        why = "file not found (ACCORD_KAFKA__CA_FILE names one elsewhere)"
                    raise ConfigError(f"the Kafka CA file {cafile} cannot be used: {why}") from None
                remember_salted_passwords(s.password.get_secret_value())
                self._security = {
                    "security_protocol": "SASL_SSL",
                    "sasl_mechanism": MECHANISM,
                    "sasl_plain_username": s.username,
                    "sasl_plain_password": s.password.get_secret_value(),
                    "ssl_context": context,
                }
        return self._security

    def producer(self, client_id: str, *, linger_ms: int = 5, **tuning: Any) -> Producer:
        """An idempotent producer: acks=all, so a retried send is written exactly once, and
        only when every in-sync replica has it."""
        return AIOKafkaProducer(  # type: ignore[no-any-return]
            enable_idempotence=True,
            acks="all",
            linger_ms=linger_ms,
            **tuning,
            **self._common(client_id),
        )

    def transactional_producer(
        self, transactional_id: str, client_id: str, **tuning: Any
    ) -> Producer:
        """A producer whose start fences every earlier one with ``transactional_id``."""
        return AIOKafkaProducer(  # type: ignore[no-any-return]
            transactional_id=transactional_id,
            enable_idempotence=True,
            acks="all",
            **tuning,
            **self._common(client_id),
        )

    def consumer(
        self,
        *topics: str,
        client_id: str,
        group: str | None = None,
        fetch_max_wait_ms: int = 20,
        **tuning: Any,
    ) -> Consumer:
        """A consumer that sees only committed records and never commits on its own.

        read_committed: records of an aborted transaction are never seen. Records become
        visible when a transaction commits, so it asks often (``fetch_max_wait_ms``) rather
        than waiting out a long poll.
        """
        options: dict[str, Any] = {
            "group_id": group,
            "isolation_level": "read_committed",
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "fetch_max_wait_ms": fetch_max_wait_ms,
        }
        options.update(tuning)  # a test may read uncommitted records, to see aborted ones
        return AIOKafkaConsumer(*topics, **options, **self._common(client_id))  # type: ignore[no-any-return]

    def admin(self, client_id: str = "accord-admin") -> Admin:
        return AIOKafkaAdminClient(**self._common(client_id))  # type: ignore[no-any-return]

    def subscribe(self, consumer: Consumer, pattern: str, listener: RebalanceListener) -> None:
        """Subscribe ``consumer`` to topics matching ``pattern``, ``listener`` told of moves."""
        consumer.subscribe(pattern=pattern, listener=_Listener(listener))

    async def read_tolerantly(
        self, positions: dict[TopicPartition, int], *, limit: int
    ) -> tuple[dict[TopicPartition, list[Any]], dict[TopicPartition, int]]:
        """The committed records from each partition's position, as ``getmany`` returns
        them, except that a header key which is not UTF-8 does not stop the read
        (``broker.kafka._tolerant``); and where each partition reads on from.

        The slow path past a record aiokafka refuses: one Fetch request per leader, by a
        client of its own, with at most ``limit`` records a partition.
        """
        client = AIOKafkaClient(**self._common("accord-tolerant-read"))
        records: dict[TopicPartition, list[Any]] = {}
        moved: dict[TopicPartition, int] = {}
        try:
            async with translated("reading past a record aiokafka cannot parse"):
                await client.bootstrap()
                await client.set_topics(sorted({tp.topic for tp in positions}))
                by_leader: dict[int, dict[str, list[tuple[int, int, int]]]] = {}
                for tp, offset in positions.items():
                    leader = client.cluster.leader_for_partition(tp)
                    if leader is None or leader < 0:
                        continue  # no leader now: the next ordinary fetch retries it
                    wanted = by_leader.setdefault(leader, {}).setdefault(tp.topic, [])
                    wanted.append((tp.partition, offset, _PARTITION_FETCH_BYTES))
                for leader, topics in by_leader.items():
                    request = FetchRequest(0, 1, 50 * 1024 * 1024, _READ_COMMITTED,
                                           list(topics.items()))  # fmt: skip
                    response = await client.send(leader, request)
                    for topic, parts in response.topics:
                        for partition, error_code, _high, *data in parts:
                            error = for_code(error_code)
                            if error is OffsetOutOfRangeError:
                                continue  # retention passed it: the consumer's reset policy
                            if error is not NoError:
                                raise error(f"{topic}-{partition}")
                            # v11 put the preferred replica between these two.
                            aborted = data[2] if response.API_VERSION >= 11 else data[-2]
                            tp = TopicPartition(topic, partition)
                            got, moved[tp] = read_partition(
                                tp, data[-1], aborted, positions[tp], limit
                            )
                            if got:
                                records[tp] = got
        finally:
            await client.close()
        return records, moved

    async def may_describe(self, topic: str, timeout_ms: int = 3000) -> bool | None:
        """Whether Kafka lets this principal see ``topic`` (Kafka grants Describe with Write
        or Read), asked with one metadata request of its own and nothing produced: False
        when Kafka answers that the principal is not authorised for it, True when it names
        the topic, None when it cannot tell (no answer within ``timeout_ms``, no such topic).

        A request of its own, read here, not through aiokafka's cluster metadata: that logs
        an ACL refusal at error level, and a caller that asks expects one. Nor through
        aiokafka's client: its bootstrap gives ``request_timeout_ms`` to each step at each
        bootstrap address (a half-dead broker held it three times the bound), and, cancelled
        while it waits on its bootstrap connection, never closes that connection (asyncio
        then logs "Unclosed AIOKafkaConnection"). Here ``timeout_ms`` bounds the whole
        question (the addresses tried in turn within it), and the connection is the probe's
        own, closed however the question ends: answered, past the bound, or cancelled (a
        gateway stopping). So nothing is left running once it returns, and no two overlap
        unless two callers ask at once."""
        common = self._common("accord-probe")
        hosts = collect_hosts(common.pop("bootstrap_servers"))
        with _quiet_probe():
            try:
                async with asyncio.timeout(timeout_ms / 1000):
                    for host, port, _family in hosts:
                        answer = await _described(host, port, topic, timeout_ms, common)
                        if not isinstance(answer, _Unreached):
                            return answer
            except TimeoutError:
                pass
        return None

    async def reachable(self, timeout_ms: int = 3000) -> bool:
        """True when the cluster answers a metadata request (not merely accepts connections)."""
        client = AIOKafkaClient(request_timeout_ms=timeout_ms, **self._common("accord-probe"))
        with _quiet_probe():
            try:
                await client.bootstrap()
                return bool(client.cluster.brokers())
            except (TimeoutError, KafkaError, OSError):
                return False
            finally:
                await client.close()


#: Whether what runs now is a probe, whose refused connections are expected, not faults.
_in_probe: ContextVar[bool] = ContextVar("accord_kafka_probe", default=False)
#: aiokafka's loggers a probe's client logs under (its client.py's is "aiokafka", which logs
#: "Unable connect to"); a filter sees only its own logger's lines, not its children's.
_AIOKAFKA_LOGGERS = ("aiokafka", "aiokafka.conn", "aiokafka.cluster")


class _QuietInProbe(logging.Filter):
    """aiokafka logs every refused connection at ERROR; a probe expects refusals. Told by a
    context variable, so only the probe's own lines go (and its task's, which copy it), not
    a producer's running alongside, and probes at once cannot undo each other as setting
    the loggers' level would."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.CRITICAL or not _in_probe.get()


_QUIET_IN_PROBE = _QuietInProbe()
for _name in _AIOKAFKA_LOGGERS:
    logging.getLogger(_name).addFilter(_QUIET_IN_PROBE)


@contextmanager
def _quiet_probe() -> Iterator[None]:
    token = _in_probe.set(True)
    try:
        yield
    finally:
        _in_probe.reset(token)


class _Unreached:
    """No answer from one bootstrap address: the next is asked."""


_UNREACHED: Final = _Unreached()


async def _described(
    host: str, port: int, topic: str, timeout_ms: int, common: dict[str, Any]
) -> bool | _Unreached | None:
    """:meth:`KafkaClients.may_describe`'s question to one broker, its connection closed
    when it ends, however it ends (the ``finally``: a cancellation too)."""
    conn = AIOKafkaConnection(host, port, request_timeout_ms=timeout_ms, **common)
    try:
        await conn.connect()
        # Never auto-created by asking: a missing topic is provisioning's to make.
        request = MetadataRequest([topic], allow_auto_topic_creation=False)
        response = await conn.send(request)
    except (KafkaError, OSError):  # TimeoutError, a refused or broken connection
        return _UNREACHED
    finally:
        conn.close()
    # Every version's topic entry starts (error_code, name, ...).
    for error_code, name, *_rest in response.topics:
        if name == topic:
            error = for_code(error_code)
            if error is TopicAuthorizationFailedError:
                return False
            return True if error is NoError else None
    return None


def warn_if_plaintext(kafka: KafkaClients) -> None:
    """A long-running service says, when it starts, that it runs without TLS or logins:
    PLAINTEXT is an explicit opt-in for synthetic data, and must not pass unnoticed."""
    if kafka.settings.security_protocol is KafkaSecurity.PLAINTEXT:
        structlog.get_logger("accord.kafka").warning(
            "kafka_plaintext", why="no TLS, no logins, no ACLs: synthetic data only"
        )
