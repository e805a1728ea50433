"""Who is at the keyboard: ``accord audit`` commands that show or change audit data sign the
officer in against the console's accounts, so the record they write names a person who proved
who they are, not whatever a free-text option said.

The password is read without echo from the terminal, or from standard input with
``--password-stdin`` (for a password manager's pipe; never an option, which would sit in the
shell history and the process list). An account with a second factor also needs ``--code``,
or the code is asked for at the terminal. A failure says the same thing whatever was wrong.

``--as`` and ``--reason`` left out are asked for at a terminal too (the brief's
``accord audit subject --nhs-number N`` works as typed); a script must give them.
"""

from __future__ import annotations

import enum
import re
import socket
import sys
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from broker.cli._common import read_password
from broker.config import Settings
from broker.errors import SignInFailed, UsageError
from broker.principals import Principal

if TYPE_CHECKING:
    from broker.keys import FileKeyStore

Officer = Annotated[
    str | None,
    typer.Option(
        "--as",
        help="Your console account (see 'accord console add-user'): the audit log names you. "
        "Asked for at a terminal if left out.",
    ),
]
PasswordStdin = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read your password from standard input."),
]
Code = Annotated[
    str | None,
    typer.Option("--code", help="The one-time code from your authenticator app."),
]
#: A host name (RFC 1123): dot-separated labels of letters, digits and '-', neither first nor
#: last, each up to 63 characters, 253 in all. Never a '/': that starts a console instance.
_HOST_NAME = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
#: What keeps the command line's chain apart from every console's (``console:<host>`` and
#: ``console:<host>/<instance>``): the one a console writes is never fenced by a command.
CLI_SUFFIX = ".cli"


def check_host(host: str | None) -> str | None:
    """``host`` if it is a host name the command line may name its chain after; else
    ``UsageError`` in one line (the value is not repeated: it could be anything typed)."""
    if host is not None and not _HOST_NAME.fullmatch(host):
        raise UsageError(
            "--host: give a host name (letters, digits, '-' and '.'; no '/'): the command "
            f"line writes the audit chain console:HOST{CLI_SUFFIX}, apart from any console's"
        )
    return host


Host = Annotated[
    str | None,
    typer.Option(
        "--host",
        help=f"Names your audit chain console:HOST{CLI_SUFFIX}, apart from any console's "
        "(default HOST: this host's name).",
        # Checked as the command line is read: refused before a password is asked for.
        callback=check_host,
    ),
]

FAILED = "sign-in failed: wrong account name, password or code"


def cli_chain(host: str | None) -> str:
    """The audit chain the command line writes, ``console:HOST.cli``: apart from a console's
    ``console:HOST`` and ``console:HOST/NAME``, so that a command never fences a running
    console's writer (which would stop that console). ``host`` is a host name, whoever gives
    it: a '/' could make it a console instance's chain."""
    return Principal.CONSOLE.chain(f"{check_host(host) or socket.gethostname()}{CLI_SUFFIX}")


def sign_in(
    settings: Settings,
    name: str,
    *,
    keys: FileKeyStore,
    password_stdin: bool,
    code: str | None,
) -> str:
    """The account name once the officer has proved it is theirs; ``SignInFailed`` otherwise
    (``UsageError`` when there is no way to ask for the password). ``keys`` is the console's
    keystore, whose ``users-totp`` secret opens the accounts' second factors."""
    from broker.console import TotpBox, UserFile

    # Never makes the keystore's users-totp secret: signing in is not enrolling.
    box = TotpBox.from_keystore(keys, "console", create=False)
    users = UserFile(settings.console_users_file, box=box)
    password = read_password(f"Password for {name}", from_stdin=password_stdin)
    if code is None and terminal() and users.has_second_factor(name):
        code = str(typer.prompt("One-time code", err=True)).strip()
    if not users.authenticate(name, password, code):
        # Nothing is logged: a one-shot command's output is its stdout (JSON, CSV), and the
        # officer sees this line; what they then look at is in the audit log under their name.
        # The accounts file read is named (the same for every failure, so it tells no one
        # whether the account exists): an account in another file, the demo's say, is found.
        raise SignInFailed(f"{FAILED} (accounts read from {users.path})")
    return name


def terminal() -> bool:
    """Whether someone is at a terminal to be asked (standard input; the tests fake it)."""
    return sys.stdin.isatty()


R = TypeVar("R", bound=enum.StrEnum)


def who_and_why(
    officer: str | None, reason: R | None, reasons: type[R], *, password_stdin: bool
) -> tuple[str, R]:
    """The account and the reason given, the missing ones asked for at a terminal.

    Without a terminal (or with ``--password-stdin``, whose standard input is the password's)
    nothing is read unasked: one line names what is missing and how to give it."""
    missing = [opt for opt, value in (("--reason", reason), ("--as", officer)) if value is None]
    if missing and (password_stdin or not terminal()):
        choices = ", ".join(r.value for r in reasons)
        how = " ".join(f"{opt} {'R' if opt == '--reason' else 'NAME'}" for opt in missing)
        raise UsageError(
            f"missing {' and '.join(missing)}: give {how}"
            + (f" (R one of {choices})" if reason is None else "")
        )
    why = reason if reason is not None else _choose(reasons)
    return (officer if officer is not None else _ask_account()), why


def who(officer: str | None, *, password_stdin: bool) -> str:
    """The account given, or asked for at a terminal (``who_and_why`` without a reason)."""
    if officer is not None:
        return officer
    if password_stdin or not terminal():
        raise UsageError("missing --as: give --as NAME (your console account)")
    return _ask_account()


def _ask_account() -> str:
    while not (name := str(typer.prompt("Your console account", err=True)).strip()):
        pass
    return name


def _choose(reasons: type[R]) -> R:
    """One of ``reasons``, by its number or its name; anything else is asked again (and is
    never repeated back: a reason typed by mistake could be a child's name)."""
    listed = list(reasons)
    typer.echo("Why are you looking? (recorded in the audit log)", err=True)
    for n, r in enumerate(listed, start=1):
        typer.echo(f"  {n}. {r.value}", err=True)
    while True:
        answer = str(typer.prompt(f"Reason [1-{len(listed)}]", err=True)).strip()
        if answer.isascii() and answer.isdigit() and 1 <= int(answer) <= len(listed):
            return listed[int(answer) - 1]
        if answer in {r.value for r in listed}:
            return reasons(answer)
        typer.echo(f"Choose a number from 1 to {len(listed)}.", err=True)
