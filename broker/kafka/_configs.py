"""Reading topics' settings as the cluster applies them: a topic's own value, else the
broker's (``log.retention.*``, ``log.roll.*``, set in ``server.properties`` or changed on the
running cluster), else Kafka's default. A service that rests an argument on a topic's
retention reads it here rather than trusting what provisioning once asked for: provisioning
only creates missing topics, and an operator may change one since."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAuthorizationFailedError, for_code

from broker.errors import TransportError
from broker.kafka._clients import KafkaClients
from broker.kafka._errors import connecting, translated

__all__ = ["topic_configs"]


async def topic_configs(
    clients: KafkaClients, names: Sequence[str], keys: Iterable[str], *, client_id: str
) -> dict[str, dict[str, str] | None]:
    """Each topic of ``names``' effective values of ``keys``, or None for a topic whose
    settings the principal may not read (Kafka's DescribeConfigs right on it: a party's own
    topics since provisioning grants it; a cluster provisioned before then says no)."""
    wanted = dict.fromkeys(keys)
    admin = clients.admin(client_id)
    try:
        async with connecting(clients):
            await admin.start()
        async with translated(f"reading the settings of {', '.join(names)}"):
            responses = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, name, wanted) for name in names]
            )
    finally:
        await admin.close()
    out: dict[str, dict[str, str] | None] = {}
    for response in responses:
        for error_code, _message, _kind, name, entries, *_ in response.resources:
            if error_code == TopicAuthorizationFailedError.errno:
                out[name] = None
            elif error_code:
                error = for_code(error_code).__name__
                raise TransportError(f"reading the settings of {name}: {error}")
            else:
                out[name] = {entry[0]: entry[1] for entry in entries if entry[1] is not None}
    if missing := [name for name in names if name not in out]:
        raise TransportError(f"reading the settings of {missing[0]}: Kafka did not say")
    return out
