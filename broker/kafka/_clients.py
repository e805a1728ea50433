"""Every Kafka client Accord uses is built here, from ``KafkaSettings``.

Connection settings (the bootstrap address and, with Kafka security, TLS and credentials) are
applied in one method, :meth:`KafkaClients._common`, so no client can be made that skips them.
Processes receive a :class:`KafkaClients` (or a fake with the same methods, in unit tests)
rather than constructing aiokafka clients themselves.
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context
from aiokafka.partitioner import DefaultPartitioner

from broker.config import KafkaSecurity, KafkaSettings
from broker.errors import ConfigError
from broker.kafka._credentials import MECHANISM
from broker.kafka._protocols import Admin, Consumer, Producer, RebalanceListener

__all__ = ["KafkaClients", "partition_for"]

_PARTITIONER = DefaultPartitioner()


def partition_for(key: bytes | None, partitions: list[int]) -> int:
    """The partition the Java client (and aiokafka's ``send``) would choose for ``key``."""
    return int(_PARTITIONER(key, partitions, partitions))


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
                    raise ConfigError(
                        "no Kafka login for this principal: set ACCORD_KAFKA__USERNAME and "
                        "ACCORD_KAFKA__PASSWORD, or give it a client file with "
                        "'accord kafka provision'"
                    )
                cafile = str(s.ca_file) if s.ca_file is not None else None
                self._security = {
                    "security_protocol": "SASL_SSL",
                    "sasl_mechanism": MECHANISM,
                    "sasl_plain_username": s.username,
                    "sasl_plain_password": s.password.get_secret_value(),
                    "ssl_context": create_ssl_context(cafile=cafile),
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

    async def reachable(self, timeout_ms: int = 3000) -> bool:
        """True when the cluster answers a metadata request (not merely accepts connections)."""
        client = AIOKafkaClient(request_timeout_ms=timeout_ms, **self._common("accord-probe"))
        # aiokafka logs every refused connection at ERROR; a probe expects refusals.
        log = logging.getLogger("aiokafka")
        previous = log.level
        log.setLevel(logging.CRITICAL)
        try:
            await client.bootstrap()
            return bool(client.cluster.brokers())
        except (TimeoutError, KafkaError, OSError):
            return False
        finally:
            await client.close()
            log.setLevel(previous)
