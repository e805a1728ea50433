"""Who is at the keyboard: ``accord audit`` commands that show or change audit data sign the
officer in against the console's accounts, so the record they write names a person who proved
who they are, not whatever a free-text option said.

The password is read without echo from the terminal, or from standard input with
``--password-stdin`` (for a password manager's pipe; never an option, which would sit in the
shell history and the process list). An account with a second factor also needs ``--code``,
or the code is asked for at the terminal. A failure says the same thing whatever was wrong.
"""

from __future__ import annotations

import socket
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from broker.cli._common import read_password
from broker.config import Settings
from broker.errors import SignInFailed
from broker.principals import Principal

if TYPE_CHECKING:
    from broker.keys import FileKeyStore

Officer = Annotated[
    str,
    typer.Option(
        "--as",
        help="Your console account (see 'accord console add-user'): the audit log names you.",
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
Host = Annotated[
    str | None,
    typer.Option(
        "--host",
        help="Names your audit chain console:HOST (default: this host's name + '.cli').",
    ),
]

FAILED = "sign-in failed: wrong account name, password or code"


def cli_chain(host: str | None) -> str:
    """The audit chain the command line writes: apart from the console's own ``console:HOST``
    so that a command never fences a running console's writer mid-page."""
    return Principal.CONSOLE.chain(host or f"{socket.gethostname()}.cli")


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
    if code is None and sys.stdin.isatty() and users.has_second_factor(name):
        code = str(typer.prompt("One-time code", err=True)).strip()
    if not users.authenticate(name, password, code):
        # Nothing is logged: a one-shot command's output is its stdout (JSON, CSV), and the
        # officer sees this line; what they then look at is in the audit log under their name.
        raise SignInFailed(FAILED)
    return name
