"""``accord desk reset-offsets --as PARTY``: the desk reads its deliveries and its flags again
from the earliest record Kafka keeps, after its store was lost or restored from a backup older
than Kafka's.

The desk's consumer groups (``<party>.desk`` on ``accord.deliver.<party>``, and a
co-ordinating team's ``<party>.desk-flags`` on ``accord.desk.<party>.flags``) keep their
offsets in Kafka, not in the store: a store put back older would never be given what came
after its backup. Setting them back is harmless to the store, which keeps each delivery once
by event id and each flag once by flag id. It is not harmless to the subscriber's replay
memory (``broker.sdk._replay``), which takes a record handed over again below the group's
committed offset for a replay, and would refuse every one: so the memory's marks are set back
with the group's, a deliberate act, and a copy of a record at another position is still a
replay. A raw ``kafka-consumer-groups --reset-offsets`` misses exactly that step.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from broker.config import load_settings
from broker.errors import TransportError, UsageError
from broker.topics import deliver, desk_flags

if TYPE_CHECKING:
    from broker.kafka import KafkaClients


As = Annotated[str, typer.Option("--as", help="The party whose desk this is (its own login).")]


def register(desk: typer.Typer) -> None:
    desk.command("reset-offsets")(reset_offsets)


def reset_offsets(party: As) -> None:
    """Read the desk's deliveries (and a team's flags) again from the earliest record Kafka
    keeps, after its store was lost or restored older than Kafka. Stop the desk first."""
    from broker.cli._common import kafka_as
    from broker.sdk import default_replay_file

    settings = load_settings()
    done = asyncio.run(rewind_groups(kafka_as(settings, party), party))
    for rewound in done:
        at = ", ".join(f"partition {p}: {o}" for p, o in sorted(rewound.offsets.items()))
        typer.echo(f"{rewound.group}: reads {rewound.topic} again from {at}")
        if rewound.topic == deliver(party):
            path = default_replay_file(rewound.group, settings.home)
            if rewind_replay_memory(path, rewound.group, rewound):
                typer.echo(f"{rewound.group}: replay memory {path} set back with it")
    typer.echo(f"start {party}'s desk: what it reads again and already holds is not stored twice")


@dataclass(frozen=True, slots=True)
class Rewound:
    group: str
    topic: str
    offsets: dict[int, int]  # partition: the earliest offset Kafka keeps, now the group's


def desk_groups(party: str) -> list[tuple[str, str]]:
    """(consumer group, topic) of each reader of the desk's that keeps its offsets in Kafka."""
    return [(f"{party}.desk", deliver(party)), (f"{party}.desk-flags", desk_flags(party))]


async def rewind_groups(kafka: KafkaClients, party: str) -> list[Rewound]:
    """Set each of the desk's groups, on each partition of its topic, to the earliest offset
    Kafka keeps. The flags group is left out when the party has no flags topic (a hub, a
    school). Refused while a desk runs: Kafka takes no offsets for a group with members."""
    from aiokafka.errors import KafkaError

    from broker.kafka import stop_quietly, translated

    done: list[Rewound] = []
    for group, topic in desk_groups(party):
        consumer: Any = kafka.consumer(client_id=f"accord-desk-{party}-reset", group=group)
        try:
            async with translated(f"setting back {group} on {topic}"):
                await consumer.start()
                if topic not in await consumer.topics():
                    if topic == deliver(party):
                        raise UsageError(
                            f"there is no topic {topic}: is {party} a recipient of this "
                            "partnership (accord kafka provision)?"
                        )
                    continue  # no flags topic: not a co-ordinating team
                tps = await _partitions(kafka, party, topic)
                consumer.assign(tps)
                first = await consumer.beginning_offsets(tps)
                try:
                    await consumer.commit({tp: first[tp] for tp in tps})
                except KafkaError as exc:
                    raise TransportError(
                        f"Kafka did not take {group}'s offsets ({type(exc).__name__}): stop "
                        f"{party}'s desk first (a group with a member cannot be set back; a "
                        "desk killed rather than stopped leaves it within a minute)"
                    ) from None
        finally:
            await stop_quietly(consumer)
        done.append(Rewound(group, topic, {tp.partition: int(first[tp]) for tp in tps}))
    return done


async def _partitions(kafka: KafkaClients, party: str, topic: str) -> list[Any]:
    """Every partition of ``topic``: a consumer in no group subscribed to it is given them
    all (the group's own would join it, and take a running desk's partitions)."""
    from broker.kafka import stop_quietly

    consumer: Any = kafka.consumer(client_id=f"accord-desk-{party}-reset")
    try:
        await consumer.start()
        consumer.subscribe([topic])
        for _ in range(100):
            if tps := sorted(consumer.assignment(), key=lambda tp: tp.partition):
                return tps
            await asyncio.sleep(0.1)
        raise TransportError(f"the partitions of {topic} could not be assigned")
    finally:
        await stop_quietly(consumer)


def rewind_replay_memory(path: Path, group: str, rewound: Rewound) -> bool:
    """Set the replay memory at ``path`` back with ``group`` (False: there is none)."""
    from broker.sdk import SqliteReplayMemory

    if not path.is_file():
        return False
    memory = SqliteReplayMemory(path, group=group)
    try:
        for partition, offset in sorted(rewound.offsets.items()):
            memory.rewound(rewound.topic, partition, offset)
    finally:
        memory.close()
    return True
