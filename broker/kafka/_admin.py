"""Creating Accord's topics deliberately: explicit partitions, replication and retention.

Brokers run with ``auto.create.topics.enable=false``; a topic that should exist and does not
is a configuration error, not something to paper over with defaults.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka.admin import NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from broker import topics
from broker.config import KafkaSettings
from broker.kafka._clients import KafkaClients
from broker.kafka._errors import connecting, translated

__all__ = ["TopicSpec", "accord_topics", "ensure_topics"]

_DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


def accord_topics(
    agencies: Iterable[str], recipients: Iterable[str], settings: KafkaSettings
) -> list[TopicSpec]:
    """Every topic a deployment of these parties needs, with its retention."""
    p = settings.partitions
    keep_forever = {"retention.ms": "-1", "retention.bytes": "-1"}
    specs = [
        # The audit log is the legal record: never deleted by Kafka.
        TopicSpec(topics.AUDIT, p, keep_forever),
        TopicSpec(topics.QUARANTINE, 1, {"retention.ms": str(90 * _DAY_MS)}),
        # Consent records are the basis of shares and must be re-readable; each has its own
        # random key (a subject key would need the linkage secret agencies do not hold), so
        # compaction would keep every record anyway. The worker's table of the latest
        # consent per subject lives in its own compacted state topic.
        TopicSpec(topics.CONSENT, p, keep_forever),
        TopicSpec(topics.ACCESS, p, keep_forever),
        TopicSpec(topics.STATE, p, {"cleanup.policy": "compact"}),
    ]
    specs += [TopicSpec(topics.ingress(a), p, {"retention.ms": str(7 * _DAY_MS)}) for a in agencies]
    specs += [
        TopicSpec(topics.deliver(r), p, {"retention.ms": str(30 * _DAY_MS)}) for r in recipients
    ]
    return specs


async def missing_topics(
    clients: KafkaClients, names: Iterable[str], *, client_id: str
) -> list[str]:
    """Those of ``names`` the principal cannot see on the cluster (not made, or not its own):
    what a service checks before it starts, since only the admin may make topics."""
    admin = clients.admin(client_id)
    try:
        async with connecting(clients):
            await admin.start()
            have = set(await admin.list_topics())
    finally:
        await admin.close()
    return [name for name in names if name not in have]


async def ensure_topics(clients: KafkaClients, specs: list[TopicSpec]) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    admin = clients.admin()
    replication = clients.settings.replication_factor
    try:
        async with connecting(clients):
            await admin.start()
        async with translated(f"creating topics on {clients.bootstrap}"):
            existing = set(await admin.list_topics())
            missing = [s for s in specs if s.name not in existing]
            if missing:
                # Another worker may create them between our list and create: same outcome.
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(
                        [
                            NewTopic(s.name, s.partitions, replication, topic_configs=s.config)
                            for s in missing
                        ]
                    )
        return [s.name for s in missing]
    finally:
        await admin.close()
