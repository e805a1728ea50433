"""On real Kafka: a flag service starting while its team's consumer group has a member (another
service running) warns, and one starting alone does not."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from broker.desk import warn_if_another_instance
from broker.kafka import stop_quietly
from broker.topics import deliver, desk_flags_reader
from tests.kafka_helpers import admin_settings, clients, create_topics, unique_topic


async def test_a_second_flag_service_for_the_team_is_warned_of(kafka_bootstrap: str) -> None:
    party = unique_topic("party")
    await create_topics(kafka_bootstrap, [deliver(party)])
    kafka = admin_settings(kafka_bootstrap)
    with capture_logs() as logs:
        assert await warn_if_another_instance(kafka, party) == []
    assert not [e for e in logs if e["event"] == "flags_another_instance"]
    # The first service's reader, as ._flags_source makes it: a member of the group.
    first = clients(kafka_bootstrap).consumer(
        deliver(party), group=desk_flags_reader(party), client_id="first"
    )
    await first.start()
    try:
        for _ in range(100):
            await first.getmany(timeout_ms=100)
            if first.assignment():
                break
            await asyncio.sleep(0.1)
        # Asked one group a request (aiokafka 0.14 misreads an answer about two: the look
        # never answered before), so it answers, names the running reader and warns.
        with capture_logs() as logs:
            busy = await warn_if_another_instance(kafka, party)
    finally:
        await stop_quietly(first)
    assert not [e for e in logs if e["event"] == "flags_instance_check_failed"]
    assert busy == [desk_flags_reader(party)]
    (warning,) = [e for e in logs if e["event"] == "flags_another_instance"]
    assert warning["log_level"] == "warning"
    assert warning["groups"] == [desk_flags_reader(party)]
