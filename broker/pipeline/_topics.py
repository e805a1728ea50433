"""Creating Accord's topics deliberately: explicit partitions, replication and retention.

Brokers run with ``auto.create.topics.enable=false``; a topic that should exist and does not
is a configuration error, not something to paper over with defaults.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from broker import topics
from broker.config import KafkaSettings
from broker.errors import TransportError

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
        # Latest consent per key is what matters; compaction keeps it indefinitely.
        TopicSpec(topics.CONSENT, p, {"cleanup.policy": "compact"}),
        TopicSpec(topics.ACCESS, p, keep_forever),
        TopicSpec(topics.STATE, p, {"cleanup.policy": "compact"}),
    ]
    specs += [TopicSpec(topics.ingress(a), p, {"retention.ms": str(7 * _DAY_MS)}) for a in agencies]
    specs += [
        TopicSpec(topics.deliver(r), p, {"retention.ms": str(30 * _DAY_MS)}) for r in recipients
    ]
    return specs


async def ensure_topics(bootstrap: str, specs: list[TopicSpec], replication: int) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="accord-admin")
    try:
        await admin.start()
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
    except KafkaError as exc:
        raise TransportError(f"creating topics on {bootstrap}: {type(exc).__name__}") from exc
    except OSError as exc:
        raise TransportError(f"cannot reach Kafka at {bootstrap}: {exc.strerror}") from exc
    finally:
        await admin.close()
