"""What the console's pages need, passed in once: the seams are Protocols, so tests swap them.

The ``AuditSink`` is where the console writes its own records (every look-up, every review):
:class:`broker.audit.ChainAppender` in production; a page that cannot write its record
shows no data. ``IndexWait`` lets a review's page wait until the indexer has filed it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from broker.audit import CheckpointVerifier
from broker.config import ConsoleSettings, SchoolCalendar
from broker.console._metrics import ConsoleMetrics
from broker.governance import AuditSink, AuditStore

if TYPE_CHECKING:
    from broker.policy import Policy
    from broker.webauth import UserFile


IndexWait = Callable[[Callable[[], bool]], Awaitable[bool]]


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def no_wait(done: Callable[[], bool]) -> bool:
    return done()


def _carry_on() -> None:
    return None


@dataclass(frozen=True, slots=True)
class ConsoleDeps:
    store: AuditStore
    audit: AuditSink
    users: UserFile
    linkage_key: bytes
    device_key: bytes  # known-device cookies' (broker.webauth.device_key)
    verifier: CheckpointVerifier
    settings: ConsoleSettings
    policy: Policy | None = None
    index_wait: IndexWait = no_wait
    clock: Callable[[], datetime] = _utcnow
    # A second connection to the same index, for work too long for the event loop (verifying
    # every chain) to run in a thread; None runs it inline.
    reopen: Callable[[], AuditStore] | None = None
    # What the ops server exports; a registry of its own unless the process shares one.
    metrics: ConsoleMetrics = field(default_factory=lambda: ConsoleMetrics(CollectorRegistry()))
    # The school days Operation Encompass deadlines fall on (the dashboard's late notices).
    schools: SchoolCalendar = field(default_factory=SchoolCalendar)
    # The chain ``audit`` writes, named on the page when another console has taken it over;
    # and what the console does then (run_console: says so once and stops).
    chain: str | None = None
    on_fenced: Callable[[], None] = _carry_on
