from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from broker.config import load_settings
from broker.errors import UsageError

if TYPE_CHECKING:
    from broker.devkafka import BrokerStatus, EmbeddedKafka

# Module level: typer resolves these string annotations in the module's globals.
Port = Annotated[
    int | None,
    typer.Option(
        help="Client port on 127.0.0.1 (default 9092). A new data folder's controller takes "
        "the next port; the folder keeps both."
    ),
]
Data = Annotated[Path | None, typer.Option(help="Data directory (default <home>/kafka-data).")]
Policies = Annotated[
    Path | None, typer.Option(help="Policy bundle (default: ACCORD_POLICIES, else policies/ here).")
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")]
Rotate = Annotated[
    list[str] | None,
    typer.Option(help="Give this principal a new password (and client files); repeatable."),
]
Out = Annotated[
    Path | None, typer.Option(help="Where new client files go (default: the credentials dir).")
]
PasswordsFrom = Annotated[
    Path | None,
    typer.Option(
        help="A new login takes its password from <DIR>/<principal>.librdkafka.conf, made "
        "beforehand (a rendered deployment's secrets); no client file is written for it.",
    ),
]
Plaintext = Annotated[
    bool,
    typer.Option(
        "--insecure-plaintext",
        help="A NEW data folder without TLS, logins or ACLs: local experiments only.",
    ),
]


def _node(port: int | None, data: Path | None, *, plaintext: bool = False) -> EmbeddedKafka:
    from broker.config import KafkaSecurity
    from broker.devkafka import EmbeddedKafka

    settings = load_settings()
    return EmbeddedKafka(
        data or settings.home / "kafka-data",
        home=settings.home,
        port=port,
        security=KafkaSecurity.PLAINTEXT if plaintext else None,
    )


PLAINTEXT_WARNING = (
    "WARNING: Kafka without TLS, logins or ACLs: anyone who can reach the port can read and "
    "write every topic. Synthetic data only; never a deployment."
)


def _describe(st: BrokerStatus) -> str:
    from broker.config import KafkaSecurity

    if st.security is KafkaSecurity.PLAINTEXT:
        how = "PLAINTEXT: no TLS, no logins, no ACLs"
    else:
        how = f"TLS + SCRAM-SHA-512, ACLs on; client files in {st.clients_dir}"
    # The controller's port is said too: it is taken as well, though no command names it.
    return (
        f"kafka running (pid {st.pid}) at {st.bootstrap}, controller on 127.0.0.1:"
        f"{st.controller_port} ({how}); data in {st.data_dir}"
    )


def register(app: typer.Typer) -> None:
    kafka = typer.Typer(
        help="Run the embedded single-node Apache Kafka (KRaft).", no_args_is_help=True
    )
    app.add_typer(kafka, name="kafka")

    @kafka.command("up")
    def up(port: Port = None, data: Data = None, insecure_plaintext: Plaintext = False) -> None:
        """Fetch Kafka if needed, start it (TLS, SCRAM logins, ACLs), wait until it answers."""
        from broker.config import KafkaSecurity

        node = _node(port, data, plaintext=insecure_plaintext)
        # Before starting: said even when the start then fails on that very port.
        if (warning := node.port_warning()) is not None:
            typer.echo(warning, err=True)
        st = node.start()
        # At every start of a PLAINTEXT node, not only the one that made it so.
        if st.security is KafkaSecurity.PLAINTEXT:
            typer.echo(PLAINTEXT_WARNING, err=True)
        typer.echo(_describe(st))

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

    @kafka.command("provision")
    def provision(
        policies: Policies = None,
        dry_run: DryRun = False,
        rotate: Rotate = None,
        out: Out = None,
        passwords_from: PasswordsFrom = None,
    ) -> None:
        """Make the topics, logins and ACLs a bundle needs, and remove what it no longer gives."""
        _provision(
            policies, dry_run=dry_run, rotate=rotate or [], out=out, passwords_from=passwords_from
        )


def _given_passwords(directory: Path, principals: list[str]) -> dict[str, str]:
    from broker.kafka import read_client_file

    if not directory.is_dir():
        raise UsageError(f"--passwords-from: {directory} is not a folder")
    out = {}
    for principal in principals:
        path = directory / f"{principal}.librdkafka.conf"
        if path.is_file() and (password := read_client_file(path).get("sasl.password")):
            out[principal] = password
    return out


def _provision(
    policies: Path | None,
    *,
    dry_run: bool,
    rotate: list[str],
    out: Path | None,
    passwords_from: Path | None,
) -> None:
    from rich.console import Console
    from rich.table import Table

    from broker.kafka import client_settings
    from broker.policy import load_bundle
    from broker.principals import Principal
    from broker.provision import provision

    settings = load_settings()
    bundle = policies or settings.policies  # never the example: this changes a real cluster
    policy = load_bundle(bundle)
    # Before anything is changed: provisioning removes every login and grant the bundle does
    # not name, so the operator sees which bundle that is.
    typer.echo(f"policy bundle {bundle.resolve()}, version {policy.version}")
    unknown = sorted(set(rotate) - set(policy.bundle.parties) - {str(p) for p in Principal})
    if unknown:
        raise UsageError(f"--rotate: {unknown[0]} is no principal of this bundle")
    if Principal.GOVERNANCE in rotate:
        raise UsageError("--rotate: governance has keys but no Kafka login, so no password")
    if Principal.ADMIN in rotate:
        # Said, not silently skipped: an operator answering a leak must not think it done.
        raise UsageError(
            "--rotate: admin is Kafka's super user, made when the cluster was formatted; "
            "provisioning does not change it (docs/operations.md, 'Rotate a password')"
        )
    clients_dir = out or settings.kafka_credentials_dir
    principals = [*policy.bundle.parties, *(str(p) for p in Principal)]
    given = _given_passwords(passwords_from, principals) if passwords_from else None
    plan = provision(
        policy,
        client_settings(settings, Principal.ADMIN),
        clients_dir=clients_dir,
        dry_run=dry_run,
        rotate=frozenset(rotate),
        passwords=given,
    )
    rows = plan.rows()
    if rows:
        table = Table("action", "what", "principal", "resource", "operation", box=None)
        for row in rows:
            table.add_row(*row)
        Console(width=120).print(table)
    if dry_run:
        typer.echo(f"{len(rows)} change(s) planned; --dry-run: nothing changed")
    elif rows and given:
        typer.echo(
            f"{len(rows)} change(s) made; logins named in {passwords_from} use its passwords"
        )
    elif rows:
        typer.echo(f"{len(rows)} change(s) made; new logins' client files are in {clients_dir}")
    else:
        typer.echo("nothing to change: the cluster already gives exactly this bundle's access")
