from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo() -> None:
        """Run the whole broker on the embedded default (grows as the pipeline lands)."""
        from broker.config import load_settings  # noqa: PLC0415
        from broker.devkafka import EmbeddedKafka  # noqa: PLC0415

        settings = load_settings()
        node = EmbeddedKafka(settings.home / "kafka-data", home=settings.home)
        st = node.start()
        typer.echo(f"kafka running (pid {st.pid}) at {st.bootstrap}")
        typer.echo(
            "demo: Kafka is up. The worker, synthetic agencies and hub subscribers are not "
            "built yet; meanwhile try `accord policy explain` on an example event."
        )
