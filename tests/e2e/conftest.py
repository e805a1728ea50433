"""End-to-end fixtures: a Kafka of the module's own (the worker owns every accord.* topic),
and keys for the project's bundle."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.devkafka import EmbeddedKafka
from broker.keys import FileKeyStore
from broker.policy import load_bundle
from tests.conftest import start_kafka
from tests.e2e.playback import PROJECT_POLICIES
from tests.e2e.worker_proc import keystore_for


@pytest.fixture(scope="module")
def isolated_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedKafka]:
    """A fresh broker per module, so other tests' records never reach this worker's topics."""
    node: EmbeddedKafka = start_kafka(tmp_path_factory, "kafka-e2e", heap="512m")
    yield node
    node.stop()


@pytest.fixture
def project_keys(tmp_path: Path) -> FileKeyStore:
    """A keystore with keys for every party of the project's bundle (``policies/``)."""
    return keystore_for(load_bundle(PROJECT_POLICIES), tmp_path / "keys")
