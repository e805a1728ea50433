from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from broker.config import load_settings

if TYPE_CHECKING:
    from broker.devkafka import BrokerStatus, EmbeddedKafka

# Module level: typer resolves these string annotations in the module's globals.
Port = Annotated[int | None, typer.Option(help="Client port on 127.0.0.1 (default 9092).")]
Data = Annotated[Path | None, typer.Option(help="Data directory (default <home>/kafka-data).")]


def _node(port: int | None, data: Path | None) -> EmbeddedKafka:
    from broker.devkafka import EmbeddedKafka

    settings = load_settings()
    return EmbeddedKafka(data or settings.home / "kafka-data", home=settings.home, port=port)


def _describe(st: BrokerStatus) -> str:
    return f"kafka running (pid {st.pid}) at {st.bootstrap}; data in {st.data_dir}"


def register(app: typer.Typer) -> None:
    kafka = typer.Typer(
        help="Run the embedded single-node Apache Kafka (KRaft).", no_args_is_help=True
    )
    app.add_typer(kafka, name="kafka")

    @kafka.command("up")
    def up(port: Port = None, data: Data = None) -> None:
        """Fetch Kafka if needed, start it, and wait until it answers."""
        typer.echo(_describe(_node(port, data).start()))

    @kafka.command("down")
    def down(data: Data = None) -> None:
        """Stop the embedded Kafka; its data stays on disk."""
        typer.echo("kafka stopped" if _node(None, data).stop() else "kafka was not running")

    @kafka.command("status")
    def status(data: Data = None) -> None:
        """Say whether the embedded Kafka runs, and where (exit 3 when it does not)."""
        st = _node(None, data).status()
        if not st.running:
            typer.echo(f"kafka not running; data in {st.data_dir}")
            raise typer.Exit(3)
        typer.echo(_describe(st))
