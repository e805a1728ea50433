"""End-to-end fixtures: a Kafka of the module's own (the worker owns every accord.* topic)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from broker.devkafka import EmbeddedKafka
from tests.conftest import start_kafka


@pytest.fixture(scope="module")
def isolated_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedKafka]:
    """A fresh broker per module, so other tests' records never reach this worker's topics."""
    node: EmbeddedKafka = start_kafka(tmp_path_factory, "kafka-e2e", heap="512m")
    yield node
    node.stop()
