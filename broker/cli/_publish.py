"""``accord publish``: an agency's bulk export, validated, sealed and published."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from broker.cli._common import kafka_as, keystore
from broker.config import Settings, load_settings
from broker.errors import UsageError

As = Annotated[str, typer.Option("--as", help="The party you publish as.")]
ExportFile = Annotated[Path, typer.Argument(help="A .jsonl or .csv export of contact events.")]


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


async def _publish(settings: Settings, party: str, file: Path) -> int:
    from rich.console import Console
    from rich.progress import Progress

    from broker.sdk import GoodRow, Publisher, RowProblem, read_export

    err = Console(stderr=True)
    sent = 0
    problems: list[RowProblem] = []
    async with Publisher(party, keystore(settings, party), kafka_as(settings, party)) as pub:
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
