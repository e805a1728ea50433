"""The demo's governance console: its officer's account, kept apart, and what it prints.

The demo officer's account is kept in a users file of the demo's own
(:func:`~broker.cli._demo_hints.demo_users_file`), made anew at each start and removed at
the end. Removing an account from the console's own file at the end would not be enough: a
demo killed, or a machine that stops, never reaches its end, and a password-only account
whose password was printed on a terminal would stay for the next real console to serve. A
file no real console reads cannot leave one there, however the demo ends.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from broker.cli._demo_hints import DemoShell, demo_users_file, with_port_hint
from broker.config import Settings
from broker.errors import UsageError
from broker.kafka import KafkaClients
from broker.keys import FileKeyStore
from broker.policy import Policy
from broker.principals import Principal

if TYPE_CHECKING:
    from broker.webauth import UserFile

__all__ = ["DEMO_OFFICER", "demo_console"]

DEMO_OFFICER = "ig.demo"


def _index_label(db: str) -> str:
    """Where the audit index is, for the terminal: never a URL's user, password or query
    (``?password=``), which the settings keep secret."""
    try:
        url = urlsplit(db.strip())
        host = url.hostname or ""
        port = f":{url.port}" if url.port else ""
    except ValueError:
        return "PostgreSQL (ACCORD_AUDIT__DB)"
    if url.scheme.lower() == "sqlite":
        return db.strip()  # a file name: no credentials in it
    if ":" in host:
        host = f"[{host}]"
    return f"{url.scheme}://{host}{port}{url.path}"


async def demo_console(
    settings: Settings,
    kafka: KafkaClients,
    policy: Policy,
    stop: asyncio.Event,
    say: Callable[[str], None],
    *,
    shell: DemoShell | None = None,
) -> None:
    """The governance console, keeping the audit index (SQLite by default) current itself,
    with the demo officer's account alone; the commands to try from another terminal."""
    from broker.console import DEMO_INSTANCE, ConsoleRun, TotpBox, UserFile, run_console
    from broker.governance import open_store
    from broker.webauth import device_key

    # A demo officer with a fresh random password each run, printed once, below. Password
    # only: a second factor would need an authenticator app before anyone could look at
    # the demo, so the demo says loudly that real accounts are not made this way.
    password = secrets.token_urlsafe(12)
    keys = FileKeyStore(settings.keystore_path(Principal.CONSOLE), settings.keystore_passphrase())
    box = TotpBox.from_keystore(keys, "console", create=True)  # the demo enrols its officer
    # As add-user does; beside the console's own file, where an older Accord kept the key.
    device_key(keys, "console", settings.console_users_file, create=True)
    _forget_older_demo_officer(UserFile(settings.console_users_file, box=box), say)
    demo_file = demo_users_file(settings.home)
    demo_file.unlink(missing_ok=True)  # a killed demo's: its password was on a terminal
    UserFile(demo_file, box=box).add(DEMO_OFFICER, password)
    console = settings.console.model_copy(update={"users_file": demo_file})
    settings = settings.model_copy(update={"console": console})
    db = settings.audit.db.get_secret_value() if settings.audit.db else None
    store = open_store(db, home=settings.home)

    def started(run: ConsoleRun) -> None:
        say(f"governance console at {run.url}  (sign in as {DEMO_OFFICER} / {password})")
        say(
            f"WARNING: {DEMO_OFFICER} is a demo account with NO second factor (leave the "
            "one-time code empty); it lives in the demo's own users file, which no real "
            "console reads, and goes when the demo stops. 'accord console add-user' gives "
            "real accounts a second factor"
        )
        index = _index_label(db) if db else settings.home / "audit.db"
        say(f"audit index: {index}")
        if shell is not None:
            _say_commands(shell, policy, demo_file, say)

    try:
        await run_console(
            settings, store, kafka, policy=policy, index=True, started=started, stop=stop,
            reopen=lambda: open_store(db, home=settings.home),
            # A chain of its own: a console started by hand beside the demo (same home,
            # same Kafka) then writes console:<host> and never fences the demo's.
            instance=DEMO_INSTANCE,
        )  # fmt: skip
    except UsageError as exc:
        raise with_port_hint(exc, settings.console.port, "--console-port") from None
    finally:
        store.close()
        demo_file.unlink(missing_ok=True)


def _forget_older_demo_officer(users: UserFile, say: Callable[[str], None]) -> None:
    """An earlier demo kept its officer in the console's own users file: removed there, if
    it is still the demo's (no second factor), so that a real console stops serving it."""
    if users.exists(DEMO_OFFICER) and not users.has_second_factor(DEMO_OFFICER):
        users.remove(DEMO_OFFICER)
        say(
            f"removed the password-only {DEMO_OFFICER} account an earlier demo left in {users.path}"
        )


def _say_commands(
    shell: DemoShell, policy: Policy, users_file: Path, say: Callable[[str], None]
) -> None:
    """Commands to try from another terminal, complete: they run as pasted."""
    parties = policy.bundle.parties
    hub = next((p for p, party in parties.items() if party.kind == "hub"), None)
    team = next((p for p, party in parties.items() if party.kind == "coordinating_team"), None)
    # Set on each command that signs in, never exported: the demo's officer is in the demo's
    # own users file, and an exported variable would make a real `accord console` started
    # later from the same shell serve its password-only account.
    demo_users = {"ACCORD_CONSOLE__USERS_FILE": str(users_file.absolute())}
    officer = ("--as", DEMO_OFFICER)
    lines = [
        shell.run("audit", "verify"),
        shell.run("audit", "report", *officer, "--reason", "oversight", env=demo_users),
        # A child's NHS number and an override's ids are the demo's random ones: named by a
        # shell variable to set, never a made-up value that would find nothing.
        # The demo prints none (rightly): the hub's tail, listed below, prints what it opens.
        "# a subject access request: set NHS to a child's NHS number "
        + (f"from the output of 'accord tail --as {hub}' (below)" if hub
           else "from a recipient's deliveries"),
        shell.run("audit", "subject", "--nhs-number", env=demo_users) + ' "$NHS" '
        + " ".join([*officer, "--reason", "subject_access_request", "--format", "html"])
        + " > sar.html",
        "# an override's review: set EVENT and TO from the console's Override reviews page",
        shell.run("audit", "review-override", env=demo_users) + ' "$EVENT" --recipient "$TO" '
        + " ".join([*officer, "--finding", "justified", "--reference", "IG-DEMO-1"]),
    ]  # fmt: skip
    if hub is not None:
        # tail acknowledges each record it prints, as opened by the person at the terminal
        # (--by, default the login name): the child's disclosure log names them.
        lines.append(shell.run("tail", "--as", hub))
    if team is not None:
        lines += [shell.run("desk", "add-user", "--as", team, "kim.ward"),
                  shell.run("desk", "--as", team)]  # fmt: skip
    say("from another terminal (the audit commands ask for the password above):")
    for line in [*shell.setup(), *lines]:
        say(f"  {line}")
