"""End-to-end fixtures: a Kafka of the module's own (the worker owns every accord.* topic)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.devkafka import EmbeddedKafka, free_port


@pytest.fixture(scope="module")
def isolated_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedKafka]:
    """A fresh broker per module, so other tests' records never reach this worker's topics."""
    home = Path(os.environ.get("ACCORD_HOME") or Path.home() / ".cache" / "accord")
    node = EmbeddedKafka(
        tmp_path_factory.mktemp("kafka-e2e"),
        home=home,
        port=free_port(),
        controller_port=free_port(),
        heap="512m",
    )
    node.start()
    yield node
    node.stop()
