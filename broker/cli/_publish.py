"""``accord publish``: an agency's bulk export, validated, sealed and published."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from broker.cli._common import kafka_as, keystore
from broker.cli._loop import run
from broker.config import Settings, load_settings
from broker.errors import UsageError

if TYPE_CHECKING:
    from broker.sdk import GoodRow, RowProblem

As = Annotated[str, typer.Option("--as", help="The party you publish as.")]
ExportFile = Annotated[Path, typer.Argument(help="A .jsonl or .csv export of contact events.")]
FromLine = Annotated[
    int,
    typer.Option(
        "--from-line",
        min=1,
        help=(
            "Skip the events that start before this line (to finish a run that stopped). "
            "Lines count as in 'stopped at line N': a CSV row over several lines is at its first."
        ),
    ),
]

#: Events per publish_many call: each call is acknowledged by Kafka before the next goes, so
#: a failure leaves everything before the failing chunk known to be published.
_CHUNK = 200


def register(app: typer.Typer) -> None:
    @app.command("publish")
    def publish(file: ExportFile, party: As, from_line: FromLine = 1) -> None:
        """Validate, seal and publish a bulk export; bad rows are listed and the rest sent."""
        if not file.is_file():
            raise UsageError(f"{file}: no such file")
        settings = load_settings()
        failed = run(_publish(settings, party, file, from_line))
        if failed:
            raise typer.Exit(1)


async def _publish(settings: Settings, party: str, file: Path, from_line: int = 1) -> int:
    from rich.console import Console
    from rich.progress import Progress

    from broker.sdk import GoodRow, Publisher, RowProblem, read_export

    err = Console(stderr=True)
    keys, kafka = keystore(settings, party), kafka_as(settings, party)
    async with Publisher(party, keys, kafka, envelope=settings.envelope) as pub:
        rows = [r for r in read_export(file, pub.validate) if r.line >= from_line]
        good = [r for r in rows if isinstance(r, GoodRow)]
        problems = [r for r in rows if isinstance(r, RowProblem)]
        sent = 0
        try:
            with Progress(console=err, transient=not err.is_terminal) as progress:
                task = progress.add_task(f"publishing to {pub.topic}", total=len(good))
                for start in range(0, len(good), _CHUNK):
                    chunk = good[start : start + _CHUNK]
                    await pub.publish_many([r.event for r in chunk])
                    sent += len(chunk)
                    progress.update(task, advance=len(chunk))
        finally:
            # Also when a send fails part way (the error line follows): which rows were
            # refused, and which went, is what the user needs to finish the job.
            _report(file, party, problems, good, sent)
    return len(problems)


def _report(
    file: Path, party: str, problems: list[RowProblem], good: list[GoodRow], sent: int
) -> None:
    # Plain writes: one problem per line, never wrapped, easy to grep.
    for problem in problems:
        typer.echo(f"rejected {file} {problem.describe()}", err=True)
    unsent = len(good) - sent
    summary = f"{sent} published, {len(problems)} rejected"
    typer.echo(f"{summary}, {unsent} not confirmed" if unsent else summary)
    if unsent:
        first = good[sent].line
        # Each chunk is acknowledged before the next goes, so everything before the failing
        # chunk is on Kafka; of the failing chunk, some may have gone before the error.
        typer.echo(
            f"stopped at line {first}: every event before it was published, from it on not "
            f"all were; finish with 'accord publish --as {party} --from-line {first} {file}' "
            "(an event of it that did go is quarantined by the broker as a replay, never "
            "shared twice; re-sending the whole file does that to every event already "
            "published)",
            err=True,
        )
