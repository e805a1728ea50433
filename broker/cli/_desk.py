"""``accord desk --as PARTY [serve options] | add-user | remove-user | users``: the
recipients' desk."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from broker.cli import _desk_flags, _desk_offsets, _desk_parked
from broker.cli._common import print_accounts, read_password
from broker.config import DeskSettings, load_settings
from broker.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from broker.webauth import UserFile

As = Annotated[str, typer.Option("--as", help="The party whose desk this is (its own keystore).")]
OptionalAs = Annotated[
    str | None, typer.Option("--as", help="The party whose desk this is (its own keystore).")
]
Policies = Annotated[
    Path | None,
    typer.Option(help="Policy bundle folder (default: ACCORD_POLICIES, else policies/ here)."),
]
Host = Annotated[
    str | None,
    typer.Option(help="Listen on this address (default 127.0.0.1; any other needs TLS)."),
]
Port = Annotated[
    int | None,
    typer.Option(help="Listen on this port (default 8766; 0: any).", min=0, max=65535),
]
Store = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="The desk's store URL (default: ACCORD_DESK__STORE or <home>/desk/PARTY.db).",
    ),
]
Name = Annotated[str, typer.Argument(help="The person's user name (a-z, 0-9, '.', '_', '-').")]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]
Reset = Annotated[
    bool, typer.Option("--reset", help="Remake an existing user: new password, new second factor.")
]
NoTotp = Annotated[
    bool, typer.Option("--no-totp", help="No second factor: the password alone signs in.")
]


def serve(
    ctx: typer.Context,
    *,
    party: OptionalAs = None,
    policies: Policies = None,
    host: Host = None,
    port: Port = None,
    store: Store = None,
) -> None:
    """Serve the desk of a co-ordinating team, hub or school (sign in with an account from
    'accord desk add-user --as PARTY NAME')."""
    if ctx.invoked_subcommand is not None:
        return
    if party is None:
        raise UsageError("say whose desk: accord desk --as PARTY")
    from broker.cli._common import kafka_as, own_keystore
    from broker.cli._logging import configure_logging
    from broker.cli._loop import run
    from broker.desk import DeskRun, DeskStore, check_desk_party, open_desk_store, run_desk
    from broker.policy import load_bundle
    from broker.webauth import check_exposure, plain_http_warning

    settings = load_settings()
    if policies is not None:  # as ACCORD_POLICIES: whatever reads the bundle reads this one
        settings = settings.model_copy(update={"policies_dir": policies})
    cfg = settings.desk.model_dump()
    cfg.update({k: v for k, v in {"host": host, "port": port}.items() if v is not None})
    settings = settings.model_copy(update={"desk": DeskSettings(**cfg)})
    # Before the bundle, the keystore or Kafka: beyond loopback, only over TLS.
    check_exposure(settings.desk, app="desk")
    policy = load_bundle(settings.policies)
    check_desk_party(policy, party)
    own_keystore(settings, party)  # said as the worker says it, before the store is opened
    configure_logging()
    url = store or (settings.desk.store.get_secret_value() if settings.desk.store else None)
    kafka = kafka_as(settings, party)

    def opened() -> DeskStore:
        # Opened by run_desk once its checks pass: a refused start makes no store.
        return open_desk_store(url, home=settings.home, party=party)

    def started(run: DeskRun) -> None:
        if warning := plain_http_warning(settings.desk, app="desk"):
            typer.echo(warning, err=True)
        if not run.accounts:  # logged too (desk_no_accounts); said here for the terminal
            typer.echo(
                f"WARNING: no desk accounts for {party} yet: create one with 'accord "
                f"desk add-user --as {party} NAME' (not ready until then; no restart needed)",
                err=True,
            )
        typer.echo(f"desk of {run.party} at {run.url} ; Ctrl-C stops it")

    try:
        run(run_desk(settings, party, policy, opened, kafka, started=started))
    except KeyboardInterrupt:
        typer.echo("desk stopped")


def add_user(
    name: Name,
    party: As,
    *,
    password_stdin: PasswordStdin = False,
    reset: Reset = False,
    no_totp: NoTotp = False,
    policies: Policies = None,
) -> None:
    """Create a person's desk account for PARTY: a password (an Argon2id hash) and a TOTP
    second factor, unless --no-totp."""
    from broker._private import make_private_folders
    from broker.cli._common import keystore
    from broker.desk import check_desk_party, desk_linkage_key
    from broker.policy import load_bundle
    from broker.webauth import TotpBox, UserFile, check_username, device_key

    settings = load_settings()
    check_desk_party(load_bundle(policies or settings.policies), party)
    check_username(name)  # before opening the keystore and asking for a password
    keys = keystore(settings, party)
    owner, path = f"desk:{party}", settings.desk_users_file(party)
    try:
        # Every folder missing on the way made 0700 now, <home>/desk among them: the accounts
        # file's own mkdir gives only the last 0700 and its parents the umask's 0755, which
        # the desk's first start then tightens with a warning meant for a folder someone
        # loosened (desk_store_made_private).
        make_private_folders(path.parent)
    except OSError as exc:
        raise ConfigError(
            f"cannot make the desk's accounts folder {path.parent}: {exc.strerror or exc}"
        ) from None
    # Enrolment makes the desk's secrets, which no server makes (a pod's keystore may live
    # in memory). Older plain files are left where they are, read by the servers while the
    # keystore has no secret: moved into a keystore in memory, they would be lost. Only
    # 'accord keys init' moves them in.
    box = TotpBox.from_keystore(keys, owner, create=True)
    device_key(keys, owner, path, create=True)
    desk_linkage_key(keys, party=party, create=True)
    users = UserFile(path, box=box, issuer=f"Accord desk {party}")
    password = read_password("Password", from_stdin=password_stdin, confirm=True)
    account = users.add(name, password, replace=reset, totp=not no_totp)
    typer.echo(
        f"desk user {account.name} of {party} {'updated' if reset else 'created'} ({users.path})"
    )
    enrolment = users.totp_enrolment(name)
    if enrolment is None:
        typer.echo(f"WARNING: {name} has NO second factor: the password alone signs in.", err=True)
        return
    typer.echo("Second factor: add this account to the person's authenticator app now.")
    typer.echo(f"  otpauth URI: {enrolment.uri}")
    typer.echo(f"  secret:      {enrolment.secret}")


def _users(party: str) -> UserFile:
    """PARTY's desk accounts, for listing or removing: as the desk opens them, making no
    secret (one made in a pod's memory would seal accounts under a key a restart loses)."""
    from broker.cli._common import keystore
    from broker.webauth import TotpBox, UserFile

    settings = load_settings()
    box = TotpBox.from_keystore(keystore(settings, party), f"desk:{party}", create=False)
    return UserFile(settings.desk_users_file(party), box=box, issuer=f"Accord desk {party}")


def remove_user(name: Name, party: As) -> None:
    """Delete a person's desk account for PARTY; a running desk ends its sessions, and forgets
    its known devices, at their next request."""
    _users(party).remove(name)
    typer.echo(f"desk user {name} of {party} removed")


def list_users(party: As) -> None:
    """List PARTY's desk accounts: names, when made, whether they have a second factor (never
    the hashes or secrets)."""
    print_accounts(_users(party))


def register(app: typer.Typer) -> None:
    desk = typer.Typer(
        help="The recipients' desk: a web app for a co-ordinating team, a hub or a school.",
        invoke_without_command=True,
    )
    desk.callback()(serve)
    desk.command("add-user")(add_user)
    desk.command("remove-user")(remove_user)
    desk.command("users")(list_users)
    _desk_flags.register(desk)  # `accord desk flags --as PARTY`: the flag service
    _desk_offsets.register(desk)  # `accord desk reset-offsets --as PARTY`: after a restore
    _desk_parked.register(desk)  # `accord desk parked --as PARTY`: list or drop parked records
    app.add_typer(desk, name="desk")
