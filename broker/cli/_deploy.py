from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from broker.config import load_settings
from broker.errors import UsageError


class TargetChoice(enum.StrEnum):
    compose = "compose"
    kubernetes = "kubernetes"


Policies = Annotated[
    Path | None,
    typer.Option(help="Policy bundle folder (default: ACCORD_POLICIES, else policies/ here)."),
]
TargetOpt = Annotated[TargetChoice, typer.Option(help="What to render for.", case_sensitive=False)]
Out = Annotated[Path, typer.Option(help="Folder to render into (made if missing).")]
Brokers = Annotated[
    int, typer.Option(help="Kafka brokers: 3 or more for production, 1 for a trial.", min=1)
]
Partitions = Annotated[int, typer.Option(help="Partitions per Accord topic.", min=1)]
Image = Annotated[
    str | None,
    typer.Option(help="Accord's container image (default accord-broker:<version>)."),
]
ExternalHost = Annotated[
    str,
    typer.Option(
        help="compose: the host name agencies and recipients reach Kafka by (in the brokers' "
        "certificates and advertised listeners)."
    ),
]
Desks = Annotated[
    list[str] | None,
    typer.Option(
        "--desk",
        help="Also run this recipient's desk (and a co-ordinating team's flag service); "
        "repeat for each.",
    ),
]
Gateways = Annotated[
    list[str] | None,
    typer.Option(
        "--gateway",
        help="Also run this agency's HTTP publishing gateway (docs/gateway.md); repeat for each.",
    ),
]
KafkaSourceRanges = Annotated[
    list[str] | None,
    typer.Option(
        "--kafka-source-range",
        metavar="CIDR",
        help="kubernetes (required): an address range the parties reach Kafka's external "
        "listener from, e.g. 192.0.2.0/24; repeat for each. 0.0.0.0/0 admits the internet.",
    ),
]
Namespace = Annotated[str, typer.Option(help="kubernetes: the namespace.")]
Cluster = Annotated[str, typer.Option(help="kubernetes: the Strimzi Kafka cluster's name.")]


def register(app: typer.Typer) -> None:
    deploy = typer.Typer(
        help="Deployment files from the policy bundle: Compose, or Kubernetes with Strimzi.",
        no_args_is_help=True,
    )
    app.add_typer(deploy, name="deploy")

    @deploy.command("render")
    def render(
        *,
        out: Out,
        target: TargetOpt = TargetChoice.compose,
        policies: Policies = None,
        brokers: Brokers = 3,
        partitions: Partitions = 3,
        image: Image = None,
        external_host: ExternalHost = "localhost",
        namespace: Namespace = "accord",
        cluster: Cluster = "accord",
        desk: Desks = None,
        gateway: Gateways = None,
        kafka_source_range: KafkaSourceRanges = None,
    ) -> None:
        """Render the deployment of a bundle; re-render after every bundle change."""
        from importlib.metadata import version

        from broker.deploy import (
            Target,
            deployment,
            platform_secrets,
            removal_commands,
            render_files,
            write_render,
        )
        from broker.policy import load_bundle

        settings = load_settings()
        bundle_dir = policies or settings.policies
        policy = load_bundle(bundle_dir)
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out: {out} is not a folder")
        dep = deployment(
            policy,
            bundle_dir,
            brokers=brokers,
            partitions=partitions,
            image=image or f"accord-broker:{version('accord-broker')}",
            desks=desk or (),
            gateways=gateway or (),
        )
        files, made = render_files(
            dep, Target(target.value), out,
            external_host=external_host, namespace=namespace, cluster=cluster,
            kafka_source_ranges=kafka_source_range or (),
        )  # fmt: skip
        # Read from the files the render is about to remove.
        deletions = (
            removal_commands(out, files, namespace) if target is TargetChoice.kubernetes else []
        )
        written, removed = write_render(out, files, dep.kept())
        typer.echo(f"rendered {len(written)} file(s) for {target.value} in {out}")
        for rel in removed:
            typer.echo(f"removed {rel} (no longer part of the deployment)")
        if target is TargetChoice.kubernetes:
            _echo_platform_secrets(platform_secrets(files), namespace)
        if deletions:
            typer.echo(
                "kubectl apply -k deletes nothing: once this render is applied, delete what it "
                "no longer makes (docs/deployment.md, offboarding):"
            )
            for line in deletions:
                typer.echo(f"  {line}")
        if made:
            typer.echo(f"made {len(made)} secret file(s) in {out / 'secrets'} (mode 0600)")
        if brokers < 3:
            typer.echo(
                f"WARNING: {brokers} broker(s): a trial, not production; one broker's loss "
                "stops the partnership and may lose acknowledged records.",
                err=True,
            )


def _echo_platform_secrets(secrets: dict[str, tuple[str, ...]], namespace: str) -> None:
    # A pod whose Secret is missing never starts, and the workers are replaced all together:
    # an apply before these exist stops the pipeline (docs/deployment.md, Upgrading).
    typer.echo(
        "before applying, the namespace must hold these Secrets, which neither the render nor "
        "Strimzi makes (docs/deployment.md, Kubernetes step 2):"
    )
    for name, keys in secrets.items():
        typer.echo(f"  {name} ({', '.join(keys)})")
    typer.echo("check them (a missing one is NotFound):")
    typer.echo(f"  kubectl -n {namespace} get secret {' '.join(secrets)}")
