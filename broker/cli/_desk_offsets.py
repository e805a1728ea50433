"""``accord desk reset-offsets --as PARTY``: the desk reads its deliveries and its flags again
from the earliest record Kafka keeps, after its store was lost or restored from a backup older
than Kafka's, and after any restore of Kafka.

The desk's consumer groups (``<party>.desk`` on ``accord.deliver.<party>``, and a
co-ordinating team's ``<party>.desk-flags`` on ``accord.desk.<party>.flags``) keep their
offsets in Kafka, not in the store: a store put back older would never be given what came
after its backup. Setting them back is harmless to the store, which keeps each delivery once
by event id and each flag once by flag id. It is not harmless to the subscriber's replay
memory (``broker.sdk._replay``), which takes a record handed over again below the group's
committed offset for a replay, and would refuse every one: so the memory's marks are set back
with the group's, a deliberate act, and a copy of a record at another position is still a
replay. A raw ``kafka-consumer-groups --reset-offsets`` misses exactly that step.

Nothing moves while the desk runs: its groups are first asked of Kafka, and a group with a
member is refused before the memory or any offset is touched. Then the memory goes first, and
the groups after it. A group set back alone is not harmless: the desk would refuse, and commit
past, every record it reads again. So nothing moves in Kafka until the memory has been set
back; if Kafka then refuses the desk's group (a desk started meanwhile), the memory's marks are
put back as they were, and a failure between the two groups' commits names what moved.

The earliest offset is right for a desk newer than a restored Kafka too. Its marks sit above
the topic's new end, where Kafka now writes new records: one of them handed over again after a
crash would be refused as a replay and lost. Marks at the earliest offset are below the end;
what the desk reads again it already holds, and stores once. Setting the marks to the topic's
end alone would be enough for that desk, but not for one older than Kafka, and the command
cannot tell the two apart: the earliest is right for both.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from broker.cli._loop import run
from broker.config import load_settings
from broker.errors import TransportError, UsageError
from broker.topics import deliver, desk_flags

if TYPE_CHECKING:
    from broker.kafka import KafkaClients


As = Annotated[str, typer.Option("--as", help="The party whose desk this is (its own login).")]
NoMemory = Annotated[
    bool,
    typer.Option(
        "--no-replay-memory",
        help="This desk never kept a replay memory: set its groups back without one.",
    ),
]


def register(desk: typer.Typer) -> None:
    desk.command("reset-offsets")(reset_offsets)


def reset_offsets(party: As, no_replay_memory: NoMemory = False) -> None:
    """Read the desk's deliveries (and a team's flags) again from the earliest record Kafka
    keeps, after its store was lost or restored older than Kafka, or Kafka restored. Stop the
    desk first, and run it where the desk runs (its ACCORD_HOME)."""
    from broker.cli._common import kafka_as
    from broker.sdk import default_replay_file

    settings = load_settings()
    path = default_replay_file(f"{party}.desk", settings.home)
    # A memory looked for in the wrong home would leave the one in use refusing every record.
    if not path.is_file() and not no_replay_memory:
        raise UsageError(
            f"no replay memory at {path}: run this where the desk runs (its ACCORD_HOME, on "
            "its volume), or give --no-replay-memory if this desk never kept one"
        )

    said: list[str] = []  # said once every group has moved: a refusal is its one line alone

    def memory_first(plan: list[Rewound]) -> Callable[[], None]:
        marks: list[tuple[Rewound, dict[int, int]]] = []
        for rewound in plan:
            if rewound.topic == deliver(party):
                before = rewind_replay_memory(path, rewound)
                if before is not None:
                    marks.append((rewound, before))
                    said.append(f"{rewound.group}: replay memory {path} set back to {_at(rewound)}")

        def undo() -> None:
            for rewound, before in marks:
                restore_replay_memory(path, rewound, before)

        return undo

    done = run(rewind_groups(kafka_as(settings, party), party, first=memory_first))
    said += [f"{r.group}: reads {r.topic} again from {_at(r)}" for r in done]
    for line in said:
        typer.echo(line)
    typer.echo(f"start {party}'s desk: what it reads again and already holds is not stored twice")


@dataclass(frozen=True, slots=True)
class Rewound:
    group: str
    topic: str
    offsets: dict[int, int]  # partition: the earliest offset Kafka keeps, now the group's


def _at(rewound: Rewound) -> str:
    return ", ".join(f"partition {p}: {o}" for p, o in sorted(rewound.offsets.items()))


def desk_groups(party: str) -> list[tuple[str, str]]:
    """(consumer group, topic) of each reader of the desk's that keeps its offsets in Kafka."""
    return [(f"{party}.desk", deliver(party)), (f"{party}.desk-flags", desk_flags(party))]


async def rewind_groups(
    kafka: KafkaClients,
    party: str,
    *,
    first: Callable[[list[Rewound]], Callable[[], None]] | None = None,
) -> list[Rewound]:
    """Set each of the desk's groups, on each partition of its topic, to the earliest offset
    Kafka keeps, after ``first`` (the replay memory) was given where they will go: nothing is
    committed if it fails, and what it returns undoes it if Kafka then takes no group's
    offsets. The flags group is left out when the party has no flags topic (a hub, a school).
    Refused while a desk runs, before ``first``: Kafka would take no offsets for a group with
    members."""
    plan = await _earliest(kafka, party)
    await _refuse_members(kafka, party, [r.group for r in plan])
    undo = first(plan) if first is not None else None
    done: list[str] = []
    for rewound in plan:
        try:
            await _commit(kafka, party, rewound)
        except TransportError as exc:
            if not done:
                if undo is not None:
                    undo()  # nothing moved in Kafka: neither does the memory
                raise
            left = [r.group for r in plan if r.group not in done]
            raise TransportError(
                f"{exc}. {', '.join(done)} set back already, {', '.join(left)} not: "
                "run it again before starting the desk"
            ) from exc
        done.append(rewound.group)
    return plan


async def _earliest(kafka: KafkaClients, party: str) -> list[Rewound]:
    """Where each group would go: every partition of its topic, at the earliest offset Kafka
    keeps. Read in no group, so nothing is moved or joined."""
    from broker.kafka import stop_bounded, translated

    plan: list[Rewound] = []
    consumer: Any = kafka.consumer(client_id=f"accord-desk-{party}-reset")
    try:
        async with translated("reading the desk's topics", principal=kafka.principal):
            await consumer.start()
            topics = await consumer.topics()
        for group, topic in desk_groups(party):
            if topic not in topics:
                if topic == deliver(party):
                    raise UsageError(
                        f"there is no topic {topic}: is {party} a recipient of this "
                        "partnership (accord kafka provision)?"
                    )
                continue  # no flags topic: not a co-ordinating team
            tps = await _partitions(kafka, party, topic)
            async with translated(
                f"reading the earliest offsets of {topic}", principal=kafka.principal
            ):
                first = await consumer.beginning_offsets(tps)
            plan.append(Rewound(group, topic, {tp.partition: int(first[tp]) for tp in tps}))
    finally:
        await stop_bounded(consumer)
    return plan


async def _refuse_members(kafka: KafkaClients, party: str, groups: list[str]) -> None:
    """Refuse, before anything moves, while any of ``groups`` has a member: the desk (or its
    flag reader) runs. A group Kafka answers with an error is refused as that error."""
    from aiokafka.errors import for_code

    from broker.kafka import translated

    admin: Any = kafka.admin(f"accord-desk-{party}-reset")
    try:
        async with translated("asking Kafka whether the desk runs", principal=kafka.principal):
            await admin.start()
            # One group a request: aiokafka 0.14 reads a version-3 answer with version 2's
            # layout, which holds for one group and fails ("Buffer underrun") for two.
            answers = [await admin.describe_consumer_groups([group]) for group in groups]
            for response in (r for answer in answers for r in answer):
                for described in response.groups:
                    error, group, _state, _protocol_type, _protocol, members = described[:6]
                    if error:
                        raise for_code(error)(group)
                    if members:
                        raise TransportError(
                            f"{group} has {len(members)} member(s): stop {party}'s desk first "
                            "(a group with a member cannot be set back; a desk killed rather "
                            "than stopped leaves it within a minute). Nothing was changed"
                        )
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


async def _commit(kafka: KafkaClients, party: str, rewound: Rewound) -> None:
    from aiokafka import TopicPartition
    from aiokafka.errors import (
        CommitFailedError,
        IllegalGenerationError,
        RebalanceInProgressError,
        UnknownMemberIdError,
    )

    from broker.kafka import stop_bounded, translated

    group = rewound.group
    tps = {TopicPartition(rewound.topic, p): o for p, o in rewound.offsets.items()}
    consumer: Any = kafka.consumer(client_id=f"accord-desk-{party}-reset", group=group)
    try:
        # translated() says an access refusal (the group's or the topic's) as one.
        async with translated(
            f"setting back {group} on {rewound.topic}", principal=kafka.principal
        ):
            await consumer.start()
            consumer.assign(list(tps))
            try:
                await consumer.commit(tps)
            # What a commit from outside a group with members meets (aiokafka wraps the
            # broker's unknown member / illegal generation / rebalancing in CommitFailedError).
            except (
                CommitFailedError,
                IllegalGenerationError,
                RebalanceInProgressError,
                UnknownMemberIdError,
            ) as exc:
                raise TransportError(
                    f"Kafka did not take {group}'s offsets ({type(exc).__name__}): stop "
                    f"{party}'s desk first (a group with a member cannot be set back; a "
                    "desk killed rather than stopped leaves it within a minute)"
                ) from None
    finally:
        await stop_bounded(consumer)


async def _partitions(kafka: KafkaClients, party: str, topic: str) -> list[Any]:
    """Every partition of ``topic``: a consumer in no group subscribed to it is given them
    all (the group's own would join it, and take a running desk's partitions)."""
    from broker.kafka import stop_bounded, translated

    consumer: Any = kafka.consumer(client_id=f"accord-desk-{party}-reset")
    try:
        async with translated(f"reading the partitions of {topic}", principal=kafka.principal):
            await consumer.start()
            consumer.subscribe([topic])
            for _ in range(100):
                if tps := sorted(consumer.assignment(), key=lambda tp: tp.partition):
                    return tps
                await asyncio.sleep(0.1)
        raise TransportError(f"the partitions of {topic} could not be assigned")
    finally:
        await stop_bounded(consumer)


def rewind_replay_memory(path: Path, rewound: Rewound) -> dict[int, int] | None:
    """Set the replay memory at ``path`` back with ``rewound.group``: each partition's mark
    as it was before (None: there is no memory). A memory that cannot be opened or written is
    a ``ConfigError`` naming it."""
    from broker.sdk import SqliteReplayMemory

    if not path.is_file():
        return None
    memory = SqliteReplayMemory(path, group=rewound.group)
    try:
        # Read before they are lowered, so that an undo puts back exactly these.
        before = {p: memory.committed_up_to(rewound.topic, p) for p in rewound.offsets}
        for partition, offset in sorted(rewound.offsets.items()):
            memory.rewound(rewound.topic, partition, offset)
    finally:
        memory.close()
    return before


def restore_replay_memory(path: Path, rewound: Rewound, before: dict[int, int]) -> None:
    """Put back the marks :func:`rewind_replay_memory` lowered, when Kafka then took none of
    the group's offsets: a committed mark only ever rises, to exactly what it was."""
    from broker.sdk import SqliteReplayMemory

    memory = SqliteReplayMemory(path, group=rewound.group)
    try:
        for partition, mark in sorted(before.items()):
            if mark > rewound.offsets[partition]:
                memory.committed(rewound.topic, partition, mark)
    finally:
        memory.close()
