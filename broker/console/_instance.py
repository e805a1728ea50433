"""Which audit chain a console writes, and what to say when another console takes it over.

A console writes its officers' look-ups to its own chain through a transactional producer
whose id is derived from the chain (broker.governance.ChainAppender). Two consoles writing
one chain fence each other at every append, so each console on a host needs a chain of its
own: ``console:<host>`` for the one started without ``--instance`` (the chain every console
wrote before instances existed, so it goes on), ``console:<host>/<instance>`` for each
other. ``/`` is never in a host name, so no host's plain chain can be another's instance;
and the command line's ``console:<host>.cli`` is apart from both. Every such id stays under
the transactional-id prefix the console's login is granted (``accord-audit-console:``).
"""

from __future__ import annotations

import asyncio
import re
import socket

import structlog

from broker.errors import Fenced, UsageError
from broker.principals import Principal

__all__ = [
    "DEMO_INSTANCE",
    "FenceWatch",
    "check_instance",
    "console_chain",
    "fenced_page",
    "fenced_reason",
]

log = structlog.get_logger("accord.console")

#: What an instance may be called: short, lower case, and safe in a chain's name, a Kafka
#: transactional id, a client id and a log line as it is.
_INSTANCE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")

#: The demo's console: its own chain, so that a console started by hand beside the demo,
#: in the same home and on the same Kafka, never fences it (or is fenced by it).
DEMO_INSTANCE = "demo"


def check_instance(name: str) -> str:
    """``name`` if it may name a console instance; ``UsageError`` (one line) if not."""
    if not _INSTANCE.fullmatch(name):
        raise UsageError(
            f"--instance {name!r}: a console instance is 1 to 32 characters, lower-case "
            "letters, digits and '-', starting with a letter or digit"
        )
    return name


def console_chain(instance: str | None = None, *, host: str | None = None) -> str:
    """The chain a console writes: ``console:<host>``, or ``console:<host>/<instance>``."""
    where = host or socket.gethostname()
    if instance is not None:
        where = f"{where}/{check_instance(instance)}"
    return Principal.CONSOLE.chain(where)


def fenced_reason(chain: str | None) -> str:
    """Why a fenced console stops: for its log and the terminal (one line)."""
    return (
        f"another console is writing the audit chain {chain or 'of this console'} (one "
        "started later with the same chain), so this one stops: give each console on a "
        "host its own --instance NAME"
    )


def fenced_page(chain: str | None) -> tuple[str, str]:
    """The title and text of the page a fenced console answers with: to the officer, what
    happened; to whoever runs the console, what to do."""
    return (
        "Another console took over this console's audit log",
        "The console could not record this look-up in the audit log, so it shows nothing, "
        f"and it is stopping: another console is writing its audit chain "
        f"({chain or 'console:<host>'}) too. Whoever runs the console must give each "
        "console on this host its own instance ('accord console --instance NAME') and "
        "start this one again.",
    )


class FenceWatch:
    """What a console does once its writer is fenced: it says so in one log line (however
    many pages find it out) and stops. It does not take its chain back: a new producer
    would fence the other console in turn, and the two would take the chain from each
    other for as long as both run, failing some of each one's pages."""

    def __init__(self, chain: str) -> None:
        self.chain = chain
        self.fenced = asyncio.Event()

    def __call__(self) -> None:
        if not self.fenced.is_set():
            log.error("console_fenced", chain=self.chain, reason=fenced_reason(self.chain))
            self.fenced.set()  # the page that found it out is still answered: a graceful stop

    def check(self) -> None:
        """Raise ``Fenced``, the reason in one line, if this console was taken over."""
        if self.fenced.is_set():
            raise Fenced(fenced_reason(self.chain))
