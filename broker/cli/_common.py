"""What several commands share: the keystore the settings name, Kafka as a principal, a
password asked for without echo."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

from broker.config import Settings
from broker.errors import UsageError

if TYPE_CHECKING:
    from broker.kafka import KafkaClients
    from broker.keys import FileKeyStore
    from broker.webauth import UserFile


def kafka_as(settings: Settings, principal: str) -> KafkaClients:
    """Kafka clients that log in as ``principal`` (its client file, unless the settings name
    a login themselves)."""
    from broker.kafka import KafkaClients, client_settings  # aiokafka loads when needed

    return KafkaClients(client_settings(settings, principal))


def keystore(settings: Settings, principal: str) -> FileKeyStore:
    """``principal``'s keystore (``Settings.keystore_path``); missing, refused as
    :func:`own_keystore` says, for every service alike."""
    from broker.keys import FileKeyStore  # cryptography loads only when a command needs keys

    own_keystore(settings, principal)
    return FileKeyStore(settings.keystore_path(principal), settings.keystore_passphrase())


def own_keystore(settings: Settings, principal: str) -> None:
    """Refuse, naming ``principal``'s own keystore and what to do, when the keystore its
    service would open is not there (``Settings.keystore_path``).

    In a keys folder of one keystore per principal (a host running the worker, the console
    and the indexer), the store missing is ``<keys>/<principal>``, not the folder: said of
    the folder, it read as if the host had no keys at all, and bundle-mode ``keys init``
    there makes every party's keys (docs/operations.md, Keys). A folder an interrupted
    ``keys protect`` left is the keystore's to explain."""
    from broker.errors import KeyStoreError

    path = settings.keystore_path(principal)
    keys = settings.keys_dir
    if (path / "keystore.json").is_file() or any(
        p.name.endswith((".protecting", ".unprotected")) for p in keys.glob(".*")
    ):
        return
    own = keys / principal if any(keys.glob("*/keystore.json")) else path
    if principal == "indexer":  # it holds public keys only (docs/deployment.md)
        raise KeyStoreError(
            f"no keystore for the indexer at {own}: restore it from its backup, or give it "
            f"the signed key directory with 'accord keys import directory.json --dir {own} "
            "--trust GOVERNANCE_KEY_ID'"
        )
    raise KeyStoreError(
        f"no keystore for {principal} at {own}: restore {principal}'s keystore there from its "
        f"backup; only if {principal} never had keys, make them alone with 'accord keys init "
        f"--party {principal} --dir {own}'"
    )


def read_password(prompt: str, *, from_stdin: bool, confirm: bool = False) -> str:
    """A password from standard input's first line, or asked for at the terminal.

    The prompt goes to stderr, so a command's output (JSON, CSV) stays clean when redirected;
    end of input at the prompt is typer's Abort, one line ("aborted"), never a traceback.
    """
    if from_stdin:
        try:
            return sys.stdin.readline().rstrip("\n")
        except UnicodeDecodeError:
            raise UsageError("password: not UTF-8 text") from None
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask for the password: use --password-stdin")
    first = str(typer.prompt(prompt, hide_input=True, err=True))
    if confirm and str(typer.prompt("Repeat it", hide_input=True, err=True)) != first:
        raise UsageError("the two passwords differ")
    return first


def print_accounts(users: UserFile) -> None:
    """``accord console users`` and ``accord desk users``: each account's name, when it was
    made and whether it has a second factor (never the hashes or secrets)."""
    accounts = users.accounts()
    if not accounts:
        # None is not an error, but saying nothing leaves a wrong ACCORD_HOME unnoticed.
        missing = "" if users.path.exists() else " (the file does not exist)"
        typer.echo(f"no accounts in {users.path}{missing}")
    for account in accounts:
        made = account.created_at.isoformat(timespec="seconds")
        factor = "second factor: TOTP" if account.second_factor else "NO second factor"
        typer.echo(f"{account.name}\tcreated {made}\t{factor}")
