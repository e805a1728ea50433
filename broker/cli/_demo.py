from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Annotated

import typer

from broker.cli._loop import run

if TYPE_CHECKING:
    from broker.config import Settings

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
        """Run the whole broker on the embedded default: agencies, hubs and the IG console.

        Kafka listens on 127.0.0.1:9092 by default; for another port, run 'accord kafka up
        --port N' first (with Kafka stopped): its data folder keeps the port, and the demo
        uses it.
        """
        from broker.cli._demo_hints import DemoShell, accord_command, check_port, home_env
        from broker.cli._demo_run import run_demo
        from broker.cli._logging import configure_logging
        from broker.config import KafkaSecurity, load_settings
        from broker.devkafka import EmbeddedKafka
        from broker.webauth import check_exposure

        settings = load_settings()
        # Its console has a known password and no second factor: beyond loopback, as any
        # console, only over TLS (ACCORD_CONSOLE__HOST set to a network address, say).
        check_exposure(settings.console, app="console")
        # Before Kafka starts and the keys are made: a taken port is said now, naming the
        # option that picks another, not minutes later.
        check_port(settings.console.host, console_port, "--console-port")
        check_port("127.0.0.1", metrics_port, "--metrics-port")  # the worker's ops server
        configure_logging("error")
        # aiokafka logs every retried broker answer: NotLeader just after topics are made, and
        # on Kafka 4 a NotEnoughReplicas on many commits (the transaction-verification race,
        # docs/operations.md). Both are retried and lose nothing, but they would drown the
        # demo's own output. Errors that matter still end the demo with their message.
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
        node = EmbeddedKafka(settings.home / "kafka-data", home=settings.home)
        st = node.start()
        secured = st.security is KafkaSecurity.SASL_SSL
        down = DemoShell(accord_command()).run("kafka", "down", env=home_env(settings.home))
        typer.echo(
            f"kafka running (pid {st.pid}) at {st.bootstrap}, "
            f"{'TLS + SCRAM logins + ACLs' if secured else 'PLAINTEXT (insecure)'}; "
            f"stop it with '{down}'"
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
        typer.echo(f"policy bundle: {policies.absolute()} ({_whose(settings)})")
        settings = settings.model_copy(
            update={"kafka": kafka, "console": console, "policies_dir": policies}
        )
        # Ctrl-C may arrive as KeyboardInterrupt or, once the console's server has passed it
        # on, as the worker's own stop: either way the demo ends here, Kafka stays up.
        try:
            with contextlib.suppress(KeyboardInterrupt):
                run(run_demo(settings, duration=duration, rate=rate, metrics_port=metrics_port))
        finally:
            # A Kafka client the demo gave up stopping (Kafka gone) is collected at exit, and
            # asyncio logs "Unclosed AIOKafkaProducer" for each of dozens: noise once the demo
            # is over, burying its last line.
            logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        if node.status().running:
            typer.echo(f"demo stopped; Kafka keeps running ('{down}' stops it)")
        else:
            typer.echo("demo stopped; Kafka is not running")


def _whose(settings: Settings) -> str:
    """Why the demo runs this bundle: named, or found here, or the example."""
    if settings.policies_dir is not None:
        return "ACCORD_POLICIES"
    if settings.policies_at_hand() is not None:
        return "policies/ in this folder"
    return "the example bundle: no policies/ in this folder and no ACCORD_POLICIES"
