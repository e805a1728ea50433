"""What several commands share: the keystore the settings name, Kafka as a principal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.config import Settings

if TYPE_CHECKING:
    from broker.kafka import KafkaClients
    from broker.keys import FileKeyStore


def kafka_as(settings: Settings, principal: str) -> KafkaClients:
    """Kafka clients that log in as ``principal`` (its client file, unless the settings name
    a login themselves)."""
    from broker.kafka import KafkaClients, client_settings  # aiokafka loads when needed

    return KafkaClients(client_settings(settings, principal))


def keystore(settings: Settings, principal: str) -> FileKeyStore:
    """``principal``'s keystore (``Settings.keystore_path``)."""
    from broker.keys import FileKeyStore  # cryptography loads only when a command needs keys

    return FileKeyStore(settings.keystore_path(principal), settings.keystore.passphrase)
