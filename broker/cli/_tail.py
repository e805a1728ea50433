"""``accord tail``: open and print the records delivered to a party, as they arrive."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from broker.cli._common import kafka_as, keystore
from broker.config import Settings, load_settings

if TYPE_CHECKING:
    from broker.sdk import SharedRecord

As = Annotated[str, typer.Option("--as", help="The party you receive as.")]
JsonOut = Annotated[bool, typer.Option("--json", help="One JSON object per line.")]
Group = Annotated[str | None, typer.Option(help="Consumer group, PARTY.NAME (default PARTY.tail).")]
MaxRecords = Annotated[int | None, typer.Option("--max", help="Stop after N records.")]
Idle = Annotated[float | None, typer.Option(help="Stop after this many seconds with nothing new.")]
By = Annotated[
    str,
    typer.Option(
        help="Who opens the records (a staff or system id): each is acknowledged as opened by it."
    ),
]


def register(app: typer.Typer) -> None:
    @app.command("tail")
    def tail(
        party: As,
        *,
        group: Group = None,
        json_out: JsonOut = False,
        max_records: MaxRecords = None,
        idle: Idle = None,
        by: By = "accord-tail",
    ) -> None:
        """Open and print the records delivered to a party, as they arrive; each record
        opened is acknowledged (audited as opened by --by)."""
        settings = load_settings()
        asyncio.run(
            _tail(
                settings,
                party,
                group=group or f"{party}.tail",
                as_json=json_out,
                max_records=max_records,
                idle=idle,
                by=by,
            )
        )


async def _tail(
    settings: Settings,
    party: str,
    *,
    group: str,
    as_json: bool,
    max_records: int | None,
    idle: float | None,
    by: str,
) -> None:
    from broker.sdk import Subscriber, default_replay_file

    seen = 0
    quiet = 0.0
    keys = keystore(settings, party)
    memory = default_replay_file(group, settings.home)
    async with Subscriber(
        party, keys, kafka_as(settings, party), group, replay_memory=memory
    ) as sub:
        while max_records is None or seen < max_records:
            batch = await sub.poll(1.0)
            quiet = 0.0 if batch else quiet + 1.0
            for record in batch:
                _print_record(record, as_json)
                if not record.is_notice:  # who opened what: the console's "opened" column
                    await record.opened(by=by, purpose=_purpose(record))
                seen += 1
            if idle is not None and quiet >= idle:
                break


def _purpose(record: SharedRecord) -> str:
    from broker.events import Delivery

    return record.message.purpose if isinstance(record.message, Delivery) else "unknown"


def _print_record(record: SharedRecord, as_json: bool) -> None:
    data = record.message.model_dump(mode="json")
    if as_json:
        sys.stdout.write(json.dumps(data, sort_keys=True) + "\n")
        sys.stdout.flush()
        return
    from rich import print_json

    print_json(data=data)
