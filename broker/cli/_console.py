"""``accord console [serve options] | add-user | remove-user | users``: the governance console."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from broker.cli._common import print_accounts, read_password
from broker.config import ConsoleSettings, Settings, load_settings
from broker.errors import UsageError

if TYPE_CHECKING:
    from broker.console import UserFile

Host = Annotated[
    str | None,
    typer.Option(help="Listen on this address (default 127.0.0.1; any other needs TLS)."),
]
Port = Annotated[
    int | None,
    typer.Option(help="Listen on this port (default 8765; 0: any).", min=0, max=65535),
]
Policies = Annotated[
    Path | None, typer.Option(help="Policy bundle folder, for the agreements page.")
]
Db = Annotated[
    str | None,
    typer.Option("--db", help="Audit index URL (default: ACCORD_AUDIT_DB or <home>/audit.db)."),
]
Index = Annotated[
    bool,
    typer.Option(help="Keep the index current from accord.audit (off if another indexer runs)."),
]
Instance = Annotated[
    str | None,
    typer.Option(
        help="Run as this instance (a-z, 0-9, '-'): its own audit chain console:HOST/NAME, "
        "for a second console on this host (default: none, the chain console:HOST).",
    ),
]
Name = Annotated[str, typer.Argument(help="The officer's user name (a-z, 0-9, '.', '_', '-').")]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]
Reset = Annotated[
    bool,
    typer.Option(
        "--reset",
        help="Remake an existing user: a new password and a new second factor (the old "
        "password, code and sessions stop working).",
    ),
]
NoTotp = Annotated[
    bool,
    typer.Option(
        "--no-totp",
        help="No second factor: the password alone signs in (not recommended).",
    ),
]


def _users(settings: Settings, *, enrol: bool = False) -> UserFile:
    """The console's accounts, their second factors sealed under the console's keystore.

    Only enrolment (``enrol``) may make the keystore's users-totp and device-cookie secrets:
    listing or removing accounts must not, or a secret made in a pod's memory would seal older
    accounts' secrets under a key the next restart loses."""
    from broker.cli._common import keystore
    from broker.console import TotpBox, UserFile
    from broker.principals import Principal
    from broker.webauth import device_key

    keys = keystore(settings, Principal.CONSOLE)
    box = TotpBox.from_keystore(keys, "console", create=enrol)
    if enrol:
        # Made only if there is neither it nor an older console's plain device-cookie.key,
        # which is left where it is: add-user may run in a pod (docs/deployment.md), whose
        # keystore lives in memory. Only 'accord keys init' moves the file in.
        device_key(keys, "console", settings.console_users_file, create=True)
    return UserFile(settings.console_users_file, box=box)


def _password(from_stdin: bool) -> str:
    return read_password("Password", from_stdin=from_stdin, confirm=True)


def serve(
    ctx: typer.Context,
    *,
    host: Host = None,
    port: Port = None,
    policies: Policies = None,
    db: Db = None,
    index: Index = True,
    instance: Instance = None,
) -> None:
    """Serve the governance console (sign in with an account from 'accord console add-user')."""
    if ctx.invoked_subcommand is not None:
        return
    from broker.cli._common import kafka_as, own_keystore
    from broker.cli._logging import configure_logging
    from broker.cli._loop import run
    from broker.console import ConsoleRun, check_instance, load_console_policy, run_console
    from broker.governance import open_store
    from broker.principals import Principal
    from broker.webauth import check_exposure, plain_http_warning

    if instance is not None:
        check_instance(instance)  # before anything is opened
    settings = load_settings()
    cfg = settings.console.model_dump()
    cfg.update({k: v for k, v in {"host": host, "port": port}.items() if v is not None})
    settings = settings.model_copy(update={"console": ConsoleSettings(**cfg)})
    # Before the keystore, the index or Kafka: beyond loopback, only over TLS.
    check_exposure(settings.console, app="console")
    if policies is not None and not policies.is_dir():
        # Named on purpose: a mistyped folder must not start a console with no bundle.
        raise UsageError(f"--policies: {policies} is not a policy bundle folder")
    configure_logging()
    policy = load_console_policy(policies or settings.policies)
    own_keystore(settings, Principal.CONSOLE)  # said as the worker says it
    url = db or (settings.audit.db.get_secret_value() if settings.audit.db else None)
    store = open_store(url, home=settings.home)

    def started(run: ConsoleRun) -> None:
        if warning := plain_http_warning(settings.console, app="console"):
            typer.echo(warning, err=True)
        if not run.accounts:  # logged too (console_no_accounts); said here for the terminal
            typer.echo(
                "WARNING: no console accounts yet: create one with 'accord console "
                "add-user NAME' (not ready until then; no restart needed)",
                err=True,
            )
        typer.echo(f"governance console at {run.url} (audit chain {run.chain}); Ctrl-C stops it")

    try:
        run(
            run_console(
                settings, store, kafka_as(settings, Principal.CONSOLE), policy=policy, index=index,
                started=started, instance=instance,
                reopen=lambda: open_store(url, home=settings.home),
            )
        )  # fmt: skip
    except KeyboardInterrupt:
        typer.echo("console stopped")
    finally:
        store.close()


def add_user(
    name: Name, password_stdin: PasswordStdin = False, reset: Reset = False, no_totp: NoTotp = False
) -> None:
    """Create an IG officer's console account: a password (kept as an Argon2id hash) and a
    second factor, a one-time code from an authenticator app (TOTP), unless --no-totp."""
    from broker.console import check_username

    check_username(name)  # before asking for a password that would then be refused
    users = _users(load_settings(), enrol=True)
    account = users.add(name, _password(password_stdin), replace=reset, totp=not no_totp)
    typer.echo(f"console user {account.name} {'updated' if reset else 'created'} ({users.path})")
    enrolment = users.totp_enrolment(name)
    if enrolment is None:
        typer.echo(
            f"WARNING: {name} has NO second factor: the password alone signs in. Enrol one "
            f"with 'accord console add-user {name} --reset'.",
            err=True,
        )
        return
    # Shown this once only: the secret is not printed again, and nothing logs it.
    typer.echo(
        "Second factor: add this account to the officer's authenticator app now (scan the "
        "otpauth URI as a QR code, or type the secret); sign-in asks for its 6-digit code."
    )
    typer.echo(f"  otpauth URI: {enrolment.uri}")
    typer.echo(f"  secret:      {enrolment.secret}")


def remove_user(name: Name) -> None:
    """Delete a console account; a running console ends its sessions at their next request."""
    users = _users(load_settings())
    users.remove(name)
    typer.echo(f"console user {name} removed")


def list_users() -> None:
    """List console accounts: names, when made, whether they have a second factor (never the
    hashes or secrets)."""
    print_accounts(_users(load_settings()))


def register(app: typer.Typer) -> None:
    console = typer.Typer(
        help="The governance console for IG officers.", invoke_without_command=True
    )
    app.add_typer(console, name="console")
    console.callback()(serve)
    console.command("add-user")(add_user)
    console.command("remove-user")(remove_user)
    console.command("users")(list_users)
