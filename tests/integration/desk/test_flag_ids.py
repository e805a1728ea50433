"""The flag service's memory of what it published, read from the real flags topic: every id
on every partition (the guard against raising a flag twice after a crash)."""

from __future__ import annotations

import pytest

from broker.desk._flags_app import published_flag_ids
from broker.errors import TransportError
from tests.kafka_helpers import admin_settings, clients, create_topics, unique_topic


async def test_every_flag_id_on_every_partition_is_read(kafka_bootstrap: str) -> None:
    topic = unique_topic("flags")
    await create_topics(kafka_bootstrap, [topic], partitions=3)
    ids = {f"flag-{i:02d}" for i in range(20)}
    producer = clients(kafka_bootstrap).producer(client_id="test-flags")
    await producer.start()
    try:
        for i, flag in enumerate(sorted(ids)):
            await producer.send_and_wait(topic, b"{}", key=flag.encode(), partition=i % 3)
    finally:
        await producer.stop()
    assert await published_flag_ids(admin_settings(kafka_bootstrap), topic) == ids


async def test_an_empty_topic_has_no_ids_and_a_missing_one_is_an_error(
    kafka_bootstrap: str,
) -> None:
    topic = unique_topic("flags")
    await create_topics(kafka_bootstrap, [topic], partitions=2)
    assert await published_flag_ids(admin_settings(kafka_bootstrap), topic) == set()
    with pytest.raises(TransportError, match=r"^the topic absent-\S+ does not exist"):
        await published_flag_ids(admin_settings(kafka_bootstrap), unique_topic("absent"))
