from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from broker.config import load_settings

Policies = Annotated[
    Path | None,
    typer.Option(help="Policy bundle folder (default: ACCORD_POLICIES, else policies/ here)."),
]
Instance = Annotated[
    str,
    typer.Option(
        help="This worker's name, for its Kafka client id and logs (audit chains are per "
        "input partition: worker:TOPIC-N)."
    ),
]
MetricsPort = Annotated[
    int | None,
    typer.Option(
        help="Serve /metrics, /livez and /readyz on this port (default 9464, or "
        "ACCORD_WORKER__METRICS_PORT).",
        min=0,
        max=65535,
    ),
]
MetricsHost = Annotated[
    str | None,
    typer.Option(
        help="Serve /metrics, /livez and /readyz on this address (default 127.0.0.1, or "
        "ACCORD_WORKER__METRICS_HOST; 0.0.0.0 for a Prometheus elsewhere)."
    ),
]
SenderRate = Annotated[
    float,
    typer.Option(
        help="Each sender's budget, records/s sustained; over it its topic is paused, "
        "nothing dropped. 0: no limit.",
        min=0,
    ),
]
SenderBurst = Annotated[int, typer.Option(help="Records a sender may send at once.", min=1)]
CheckpointEvery = Annotated[
    int, typer.Option(help="Sign an audit checkpoint every N input records.", min=1)
]


def register(app: typer.Typer) -> None:
    @app.command("worker")
    def worker(
        *,
        policies: Policies = None,
        instance: Instance = "worker-1",
        metrics_host: MetricsHost = None,
        metrics_port: MetricsPort = None,
        checkpoint_every: CheckpointEvery = 1000,
        sender_rate: SenderRate = 50.0,
        sender_burst: SenderBurst = 10_000,
    ) -> None:
        """Run the sharing pipeline: open, validate, decide, redact, seal, deliver, audit."""
        from prometheus_client import CollectorRegistry

        from broker.cli._common import kafka_as, own_keystore
        from broker.cli._logging import configure_logging
        from broker.cli._loop import run_on
        from broker.pipeline import Worker, WorkerOptions, serve
        from broker.principals import Principal

        ops = {"metrics_host": metrics_host, "metrics_port": metrics_port}
        ops = {k: v for k, v in ops.items() if v is not None}
        settings = load_settings(worker=ops or None)
        configure_logging()
        options = WorkerOptions(
            policies=policies or settings.policies,
            instance=instance,
            checkpoint_every=checkpoint_every,
            sender_rate=sender_rate,
            sender_burst=sender_burst,
        )
        own_keystore(settings, Principal.WORKER)  # before the Kafka login is looked for
        w = Worker(
            settings,
            options,
            kafka=kafka_as(settings, Principal.WORKER),
            registry=CollectorRegistry(),
        )
        run_on(settings.worker.event_loop, serve(w))
