from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from broker.config import Settings, load_settings
from broker.errors import UsageError

if TYPE_CHECKING:
    from broker.keys import FileKeyStore
    from broker.sdk import SharedRecord

As = Annotated[str, typer.Option("--as", help="The party you publish or receive as.")]
ExportFile = Annotated[Path, typer.Argument(help="A .jsonl or .csv export of contact events.")]
JsonOut = Annotated[bool, typer.Option("--json", help="One JSON object per line.")]
Group = Annotated[str | None, typer.Option(help="Consumer group (default accord-tail-<party>).")]
MaxRecords = Annotated[int | None, typer.Option("--max", help="Stop after N records.")]
Idle = Annotated[float | None, typer.Option(help="Stop after this many seconds with nothing new.")]


def _keystore(settings: Settings) -> FileKeyStore:
    from broker.keys import FileKeyStore

    return FileKeyStore(settings.keys_dir, settings.keystore.passphrase)


def register(app: typer.Typer) -> None:
    @app.command("publish")
    def publish(file: ExportFile, party: As) -> None:
        """Validate, seal and publish a bulk export; bad rows are listed and the rest sent."""
        if not file.is_file():
            raise UsageError(f"{file}: no such file")
        settings = load_settings()
        failed = asyncio.run(_publish(settings, party, file))
        if failed:
            raise typer.Exit(1)

    @app.command("tail")
    def tail(
        party: As,
        group: Group = None,
        json_out: JsonOut = False,
        max_records: MaxRecords = None,
        idle: Idle = None,
    ) -> None:
        """Open and print the records delivered to a party, as they arrive."""
        settings = load_settings()
        asyncio.run(
            _tail(
                settings,
                party,
                group=group or f"accord-tail-{party}",
                as_json=json_out,
                max_records=max_records,
                idle=idle,
            )
        )


async def _publish(settings: Settings, party: str, file: Path) -> int:
    from rich.console import Console
    from rich.progress import Progress

    from broker.sdk import GoodRow, Publisher, RowProblem, read_export

    err = Console(stderr=True)
    sent = 0
    problems: list[RowProblem] = []
    async with Publisher(party, _keystore(settings), settings.kafka) as pub:
        rows = list(read_export(file, pub.validate))
        good = [r for r in rows if isinstance(r, GoodRow)]
        problems = [r for r in rows if isinstance(r, RowProblem)]
        with Progress(console=err, transient=not err.is_terminal) as progress:
            task = progress.add_task(f"publishing to {pub.topic}", total=len(good))
            for start in range(0, len(good), 200):
                chunk = good[start : start + 200]
                await pub.publish_many([r.event for r in chunk])
                sent += len(chunk)
                progress.update(task, advance=len(chunk))
    # Plain writes: one problem per line, never wrapped, easy to grep.
    for problem in problems:
        typer.echo(f"rejected {file} {problem.describe()}", err=True)
    typer.echo(f"{sent} published, {len(problems)} rejected")
    return len(problems)


async def _tail(
    settings: Settings,
    party: str,
    *,
    group: str,
    as_json: bool,
    max_records: int | None,
    idle: float | None,
) -> None:
    from broker.sdk import Subscriber

    seen = 0
    quiet = 0.0
    async with Subscriber(party, _keystore(settings), settings.kafka, group) as sub:
        while max_records is None or seen < max_records:
            batch = await sub.poll(1.0)
            quiet = 0.0 if batch else quiet + 1.0
            for record in batch:
                _print_record(record, as_json)
                seen += 1
            if idle is not None and quiet >= idle:
                break


def _print_record(record: SharedRecord, as_json: bool) -> None:
    data = record.message.model_dump(mode="json")
    if as_json:
        sys.stdout.write(json.dumps(data, sort_keys=True) + "\n")
        sys.stdout.flush()
        return
    from rich import print_json

    print_json(data=data)
