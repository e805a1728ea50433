from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Annotated

import typer

Duration = Annotated[
    float | None,
    typer.Option(
        help="Stop after this many seconds, once the scripted referral loop has ended "
        "(default: run until Ctrl-C).",
        min=0,
    ),
]
Rate = Annotated[
    float,
    typer.Option(help="Events per second the synthetic agencies publish.", min=0.01, max=10_000),
]
MetricsPort = Annotated[
    int, typer.Option(help="Prometheus /metrics port on 127.0.0.1.", min=0, max=65535)
]
ConsolePort = Annotated[
    int, typer.Option(help="Governance console port on 127.0.0.1.", min=0, max=65535)
]


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        duration: Duration = None,
        rate: Rate = 2.0,
        metrics_port: MetricsPort = 9464,
        console_port: ConsolePort = 8765,
    ) -> None:
        """Run the whole broker on the embedded default: agencies, hubs and the IG console."""
        from broker.cli._demo_run import run_demo
        from broker.cli._logging import configure_logging
        from broker.config import KafkaSecurity, load_settings
        from broker.devkafka import EmbeddedKafka

        settings = load_settings()
        configure_logging("error")
        # aiokafka logs every retried broker answer: NotLeader just after topics are made, and
        # on Kafka 4 a NotEnoughReplicas on many commits (the transaction-verification race,
        # docs/operations.md). Both are retried and lose nothing, but they would drown the
        # demo's own output. Errors that matter still end the demo with their message.
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
        node = EmbeddedKafka(settings.home / "kafka-data", home=settings.home)
        st = node.start()
        secured = st.security is KafkaSecurity.SASL_SSL
        typer.echo(
            f"kafka running (pid {st.pid}) at {st.bootstrap}, "
            f"{'TLS + SCRAM logins + ACLs' if secured else 'PLAINTEXT (insecure)'}; "
            "stop it with 'accord kafka down'"
        )
        console = settings.console.model_copy(update={"port": console_port})
        kafka = settings.kafka.model_copy(
            update={
                "bootstrap": st.bootstrap,
                "security_protocol": st.security,
                "credentials_dir": st.clients_dir,
            }
        )
        # The demo is the example's: with no bundle named and none here, it runs the example
        # bundle, pinned here for every part of it (the worker, the flag service).
        policies = settings.policies_or_example()
        settings = settings.model_copy(
            update={"kafka": kafka, "console": console, "policies_dir": policies}
        )
        # Ctrl-C may arrive as KeyboardInterrupt or, once the console's server has passed it
        # on, as the worker's own stop: either way the demo ends here, Kafka stays up.
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_demo(settings, duration=duration, rate=rate, metrics_port=metrics_port))
        typer.echo("demo stopped; Kafka keeps running ('accord kafka down' stops it)")
