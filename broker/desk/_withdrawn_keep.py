"""How long the flag service keeps withdrawn-id markers, from the topics as they are.

:mod:`._withdrawn` argues that a marker may go once no topic a withdrawn record could reach
a step through still holds the record: its retention, plus a segment's life, plus a
retention check, summed over the delivery topic and the two re-keyed topics. Its
:data:`~._withdrawn.KEEP` (90 days) rests on the settings provisioning gives those topics,
which nothing keeps true on a running cluster: provisioning never alters a topic it finds,
an operator may raise a delivery topic's retention to ride out a desk's outage, a topic may
predate provisioning, and the brokers' ``log.roll.*`` may give segments a longer life. A
marker dropped while its record is still on a topic lets a group reset to the earliest
offset (docs/desk.md) count a record whose consent was withdrawn.

So the service reads the three topics' effective ``retention.ms``, ``segment.ms`` and
``cleanup.policy`` when it starts, and again every few minutes while it runs
(:class:`KeepWatch`, ``ACCORD_DESK__FLAGS_RECHECK_MINUTES``, 10 by default), and keeps each
marker for :func:`keep_for` of them:

- at least :data:`~._withdrawn.KEEP`, never less (lower settings keep it 90 days);
- otherwise the measured reach plus :data:`GRACE`, the margin the defaults give (so each
  day of retention or segment life beyond them keeps markers a day longer);
- for good (None: never dropped, as before 2026-12-05) when any of them keeps records for
  good (``retention.ms`` -1, or a ``cleanup.policy`` without ``delete``), or its settings
  cannot be read or understood. Each logs a warning naming the topic and setting.

Lengthening, not refusing to start: a raised retention is a legitimate thing to do, and the
only cost of keeping markers longer is a larger table. A longer keep read while the service
runs applies at once, a shorter one only a keep later (``WithdrawnIds.change`` has the
rule): the grace covers the minutes between a raise and its reading (a record held longer by
a raised retention is one not yet deleted when it was raised, so no older than the old
reach); the delay is saved in the service's datadir, so a restart within it keeps it
(:mod:`._withdrawn_held`). A re-read that fails, or finds a topic's settings unreadable,
leaves the keep as it was (for good, if they could not be read at start either), with a
warning each time, until the readings have failed for :data:`UNREAD_FOR_GOOD` (a day): then
the keep is for good, as it would be at start, and a reading that succeeds later is a
lowering from for good, held a keep like any other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Final

import structlog

from broker.config import KafkaSettings
from broker.desk._withdrawn import KEEP, REACH
from broker.kafka import KafkaClients, topic_configs
from broker.topics import deliver, desk_flags, desk_flags_internal

__all__ = [
    "CHECK",
    "GRACE",
    "RECHECK",
    "SETTINGS",
    "UNREAD_FOR_GOOD",
    "Keep",
    "KeepWatch",
    "keep_for",
    "read_keep",
    "withdrawn_keep",
]

log = structlog.get_logger("accord.desk.flags")

#: The retention check's interval, ``log.retention.check.interval.ms``: a broker setting a
#: party may not read, taken at Kafka's default (the grace covers a few days more).
CHECK: Final = timedelta(minutes=5)
#: The margin :data:`~._withdrawn.KEEP` leaves over the default settings' reach, 24 days
#: 23 hours 45 minutes: kept over any measured reach too.
GRACE: Final = KEEP - REACH
# A thousand years: longer than this is "for good" (and a timedelta holds at most 10**9 days).
_FOR_GOOD_MS: Final = 1000 * 365 * 24 * 3600 * 1000
#: The settings read of each topic.
SETTINGS: Final = ("retention.ms", "segment.ms", "cleanup.policy")
#: How often the running service reads them again, by default.
RECHECK: Final = timedelta(minutes=10)
#: How long readings may fail while the service runs before the keep is taken as for good,
#: as it is when they cannot be read at start. Until then the keep stays as last read: a
#: retention raised meanwhile goes unseen, and only the grace (about 25 days) covers it. A
#: day is well inside the grace, and long enough to ride out a broker's restart or a login
#: being renewed without a keep for good (and the keep-long delay after it). At the longest
#: interval (``ACCORD_DESK__FLAGS_RECHECK_MINUTES``, a day) it is the second failure in a row.
UNREAD_FOR_GOOD: Final = timedelta(days=1)
_FAILING_S: Final = UNREAD_FOR_GOOD.total_seconds()


@dataclass(frozen=True, slots=True)
class Keep:
    """How long to keep markers (None: for good), and why, when it is not the default."""

    keep: timedelta | None
    reach: timedelta | None = None
    reason: str | None = None
    #: False when a topic's settings could not be read (so the keep is for good).
    read: bool = True
    #: The settings it was worked out from, for the warnings.
    settings: Mapping[str, Mapping[str, str] | None] | None = None


def keep_for(configs: Mapping[str, Mapping[str, str] | None]) -> Keep:
    """The markers' keep for the effective settings of the topics a withdrawn record reaches
    a step through (topic name: settings, None when they could not be read)."""
    reach = timedelta(0)
    for topic, settings in configs.items():
        if settings is None:
            return Keep(None, reason=f"{topic}: its settings could not be read", read=False)
        policy = {p.strip() for p in settings.get("cleanup.policy", "delete").split(",")}
        if "delete" not in policy:
            return Keep(None, reason=f"{topic}: cleanup.policy={settings['cleanup.policy']}")
        try:
            retention_ms = int(settings["retention.ms"])
            segment_ms = int(settings["segment.ms"])
        except (KeyError, ValueError):
            return Keep(None, reason=f"{topic}: no retention.ms or segment.ms as a number")
        if retention_ms < 0:
            return Keep(None, reason=f"{topic}: retention.ms={retention_ms}")
        if retention_ms + max(segment_ms, 0) > _FOR_GOOD_MS:
            # Long.MAX_VALUE, as some tools write "for good" (beyond what a timedelta holds).
            why = f"retention.ms={retention_ms}, segment.ms={segment_ms}"
            return Keep(None, reason=f"{topic}: {why}")
        reach += timedelta(milliseconds=retention_ms + max(segment_ms, 0)) + CHECK
    return Keep(max(KEEP, reach + GRACE), reach)


async def read_keep(kafka: KafkaSettings, party: str) -> Keep:
    """The markers' keep for ``party``'s topics' settings as the cluster has them now;
    Kafka's failures raised."""
    _, bychild, _, byhousehold = desk_flags_internal(party)
    names = [deliver(party), bychild, byhousehold]  # as _withdrawn.RETENTION's
    configs = await topic_configs(
        KafkaClients(kafka), names, SETTINGS, client_id=f"{desk_flags(party)}-check"
    )
    return replace(keep_for(configs), settings=configs)


async def withdrawn_keep(kafka: KafkaSettings, party: str) -> timedelta | None:
    """How long ``party``'s flag service keeps withdrawn-id markers on this cluster (None: for
    good), read when it starts; a warning says why when it is not 90 days."""
    found = await read_keep(kafka, party)
    _warn(found)
    return found.keep


class KeepWatch:
    """Reads the topics' settings again every ``every`` while the service runs (``read``:
    :func:`read_keep`) and gives ``change`` each new keep (``WithdrawnIds.change``, which
    logs it); ``current``, the keep read at start; ``clock``, the time in seconds."""

    def __init__(
        self,
        read: Callable[[], Awaitable[Keep]],
        change: Callable[[timedelta | None], None],
        current: timedelta | None,
        *,
        every: timedelta = RECHECK,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._read = read
        self._change = change
        self.current = current
        self.every = every
        self._sleep = sleep
        self._clock = clock
        # When the readings began to fail (None: the last one succeeded), and when that was
        # last said: once a run and once a day, not at every reading (a login without the
        # DescribeConfigs right would otherwise warn 144 times a day, for ever).
        self._failing_since: float | None = None
        self._said: float | None = None

    async def run(self) -> None:
        while True:
            await self._sleep(self.every.total_seconds())
            await self.check()

    async def check(self) -> None:
        """One reading: a new keep given on; a failed one logged, and the keep left alone
        until they have failed for :data:`UNREAD_FOR_GOOD`, then for good."""
        try:
            found = await self._read()
        except Exception as exc:  # noqa: BLE001  # any failure: the keep stays, loudly
            self._unread(type(exc).__name__)
            return
        if not found.read:
            self._unread("settings-unreadable")
            return
        if self._failing_since is not None:
            log.info(
                "flags_withdrawn_keep_read_again",
                failed_hours=round((self._clock() - self._failing_since) / 3600, 2),
            )
        self._failing_since = self._said = None
        if found.keep != self.current:
            self.current = found.keep
            self._change(found.keep)
            _warn(found)

    def _unread(self, error: str) -> None:
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
        if self._said is None or now - self._said >= _FAILING_S:
            self._said = now
            _unread(error, for_good=self.current is None)
        if self.current is not None and now - self._failing_since >= _FAILING_S:
            # As at start: settings unread are taken to keep records for good. Once a
            # reading succeeds, the keep it gives is a lowering from for good, held a keep.
            self.current = None
            self._change(None)
            _warn(Keep(None, reason="the topics' settings could not be read for a day"))


def _unread(error: str, *, for_good: bool) -> None:
    kept = (
        "kept for good"
        if for_good
        else "kept as long as before, and for good once the readings have failed for a day"
    )
    log.warning(
        "flags_withdrawn_keep_unread",
        error=error,
        hint=f"the delivery and re-keyed topics' settings could not be read again: withdrawal "
        f"markers are {kept}; said again daily while it lasts; check the service's Kafka login "
        "and its DescribeConfigs right ('accord kafka provision' as the admin)",
    )


def _days(keep: timedelta | None) -> float | None:
    return None if keep is None else round(keep / timedelta(days=1), 2)


def _warn(found: Keep) -> None:
    """Why the keep is not 90 days, when it is not (logged at start and at each change)."""
    if found.keep is None:
        log.warning(
            "flags_withdrawn_kept_for_good",
            reason=found.reason,
            hint="a withdrawn record could stay on this topic for good, so its marker does "
            "too; give the topic a finite retention and cleanup.policy delete (or, if its "
            "settings could not be read, run 'accord kafka provision' as the admin): the "
            "service reads them again every few minutes, and drops markers again once the "
            "new keep has passed",
        )
    elif found.keep > KEEP:
        log.warning(
            "flags_withdrawn_kept_longer",
            keep_days=_days(found.keep),
            reach_days=_days(found.reach or timedelta(0)),
            settings=found.settings,
            hint="the delivery or re-keyed topics keep records longer than provisioning "
            "sets (retention.ms, or segment.ms/log.roll.*): markers are kept as long, and a "
            "grace, after it",
        )
