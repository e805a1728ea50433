"""``accord gateway --as PARTY``: an agency's HTTP publishing gateway (docs/gateway.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from broker.config import GatewaySettings, load_settings

As = Annotated[str, typer.Option("--as", help="The agency you publish as (its own keystore).")]
Host = Annotated[
    str | None,
    typer.Option(help="Listen on this address (default 127.0.0.1; any other needs TLS)."),
]
Port = Annotated[
    int | None,
    typer.Option(help="Listen on this port (default 8780; 0: any).", min=0, max=65535),
]


def register(app: typer.Typer) -> None:
    @app.command("gateway")
    def gateway(party: As, host: Host = None, port: Port = None) -> None:
        """Serve PARTY's HTTP publishing gateway: JSON contact events and consent records
        in, validated, sealed and published (bearer token: ACCORD_GATEWAY__TOKEN_FILE)."""
        import contextlib

        from broker.cli._common import kafka_as, keystore
        from broker.cli._logging import configure_logging
        from broker.cli._loop import run
        from broker.cli._publish import _unknown_party_hint
        from broker.errors import KeyStoreError
        from broker.gateway import GatewayRun, check_gateway, run_gateway
        from broker.webauth import loopback

        settings = load_settings()
        cfg = settings.gateway.model_dump()
        cfg.update({k: v for k, v in {"host": host, "port": port}.items() if v is not None})
        settings = settings.model_copy(update={"gateway": GatewaySettings(**cfg)})
        check_gateway(settings.gateway)  # before the keystore's passphrase or Kafka
        try:
            keys = keystore(settings, party)
        except KeyStoreError as exc:  # ``--as wmpp``: a typo, said as ``accord publish`` says it
            if hint := _unknown_party_hint(settings, party):
                raise KeyStoreError(f"{exc}{hint}") from None
            raise
        kafka = kafka_as(settings, party)
        configure_logging()

        def started(run: GatewayRun) -> None:
            if not run.tls and not loopback(settings.gateway.host):
                typer.echo(
                    "WARNING: plain HTTP: TLS is left to the proxy in front "
                    "(ACCORD_GATEWAY__TLS_TERMINATED_BY_PROXY); nothing else may reach this "
                    "port",
                    err=True,
                )
            typer.echo(f"gateway of {run.party} at {run.url} (to {run.topic}) ; Ctrl-C stops it")

        with contextlib.suppress(KeyboardInterrupt):
            run(run_gateway(settings, party, keys, kafka, started=started))
        typer.echo("gateway stopped")  # Ctrl-C or SIGTERM alike
