"""A keystore for a handful of parties and their topics on the session's real Kafka."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.config import KafkaSettings
from broker.keys import FileKeyStore
from tests.kafka_helpers import admin_env, clients

PARTIES = ("wmp", "worker", "hub-a", "hub-b")


@pytest.fixture(scope="session")
def keystore(tmp_path_factory: pytest.TempPathFactory) -> FileKeyStore:
    store = FileKeyStore(tmp_path_factory.mktemp("keys"), create=True)
    for party in PARTIES:
        store.ensure_party(party)
    return store


@pytest.fixture(scope="session")
async def sdk_topics(kafka_bootstrap: str) -> None:
    from broker.kafka import accord_topics, ensure_topics

    kafka = clients(kafka_bootstrap)
    # hub-p: the keystore-per-party tests' own world (a subscriber stops on a record sealed
    # under keys its keystore does not know); hub-r, hub-v: the rotation tests'; hub-k, hub-l:
    # the parked deliveries' tests.
    recipients = ["hub-a", "hub-b", "hub-p", "hub-r", "hub-v", "hub-k", "hub-l"]
    specs = accord_topics(["wmp"], recipients, KafkaSettings(partitions=1))
    await ensure_topics(kafka, specs)


@pytest.fixture
def keys_home(
    keystore: FileKeyStore, monkeypatch: pytest.MonkeyPatch, kafka_bootstrap: str, tmp_path: Path
) -> Path:
    """Point the CLI's settings at the test keystore and broker (and a home of the test's own,
    for the subscriber's replay memory)."""
    monkeypatch.setenv("ACCORD_KEYSTORE__PATH", str(keystore.path))
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path / "home"))
    for name, value in admin_env(kafka_bootstrap).items():  # these parties have no logins
        monkeypatch.setenv(name, value)
    return keystore.path
