"""The worker's start does not wait for the restore's consumer to finish closing.

A consumer stopped with a fetch just sent can wait 30 s for its TLS close: a Kafka broker that
reads the request and the close_notify together never answers the close_notify, and the event
loop gives up on it only after its TLS shutdown timeout; the restore waits only
``broker.kafka.stop_bounded``'s bound (``_errors.CLOSE_WAIT_S``). The fake consumer's stop waits
the same way, for ever.
"""

from __future__ import annotations

import asyncio

import pytest

from broker.kafka import _errors
from broker.keys import FileKeyStore
from broker.pipeline._restore import restore_state
from broker.pipeline._state import state_mac_key
from broker.topics import STATE
from tests.kafka_helpers import OneConsumerKafka, SlowToClose


async def test_the_restore_returns_while_its_consumer_is_still_closing(
    pipeline_keys: FileKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_errors, "CLOSE_WAIT_S", 0.2)
    consumer = SlowToClose(STATE)
    loop = asyncio.get_running_loop()
    began = loop.time()

    reader, ends = await asyncio.wait_for(
        restore_state(OneConsumerKafka(consumer), pipeline_keys, state_mac_key(b"k" * 32)),  # type: ignore[arg-type]
        timeout=5,
    )

    assert loop.time() - began < 2
    assert ends == {consumer.tp: 0}
    assert reader.report.refused == {}
    assert consumer.stop_begun.is_set()  # begun, and left to finish in the background
