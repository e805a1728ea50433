"""The withdrawn event ids the flag service keeps beside its windows, and for how long.

A withdrawal notice reaches both steps (child and household) on every partition of their
re-keyed topics. There it takes the withdrawn records out of the states of the partition's
keys, which remember them in ``gone`` for as long as a marker lives (:mod:`._gone`), and
leaves one marker per id for a record not here yet: a notice and its record travel on
different partitions of the delivery topic, and a backlog can bring the notice first. A
marker's key is ``~withdrawn-<n>-<event id>`` (``n`` chosen so the key is the partition's
own); its value is the time it was written, in whole seconds of the service's clock.

How long a marker must live
---------------------------

Only while its record could still reach the step. Where the record could count does not
bound it: a record counted before its notice came is in its state's ``gone`` list, not the
marker's business; and a record arriving late is evaluated at its own ``occurred_at``, in
its own window (docs/policy-language.md, section 12), so a withdrawn record arriving a year
late would count, whatever the rules' windows. What bounds it is how long Kafka keeps it:

1. The worker writes the record R to ``accord.deliver.<party>`` before the notice N that
   names it: N names only shares the worker's task has already made (``recall`` in
   ``broker.pipeline._consent``, run as a transaction closes, after the transaction's
   deliveries are sent). So R's timestamp is at most N's.
2. A marker is written when the step reads N, after the first step read N from the
   delivery topic, after the worker wrote it: the marker's time is at least N's timestamp,
   so at least R's.
3. Kafka deletes a record once its segment's newest timestamp is older than the topic's
   ``retention.ms``. A segment takes records for at most ``segment.ms`` after its first
   (provisioning leaves it at the broker's default, 7 days), and the deletion check runs
   every 5 minutes. So a record can be read for at most its retention + 7 days (and 5
   minutes) after its timestamp, by any consumer, a group reset to the earliest offset too
   (a topic whose ``cleanup.policy`` is not ``delete``, or whose retention is -1, keeps it
   for good).
4. R reaches the child step only through the first step, which reads it from the delivery
   topic (30 days' retention) and sends it on to ``-bychild`` (7 days), stamped when sent;
   the household step sees it only as the child step's message on ``-byhousehold`` (7
   days), stamped when the child step counted it.

So, with the settings provisioning gives, R reaches a step at most (30 + 7) + (7 + 7) +
(7 + 7) = 65 days (and 15 minutes: :data:`REACH`) after the marker's time. A marker is kept
for :data:`KEEP`, 90 days: 24 days 23 hours 45 minutes' grace for clocks that disagree
between the worker's, the brokers' and the service's hosts, and for a cluster switched off
for a while (it deletes nothing while off, and hands back what expired meanwhile until its
first check, minutes after it starts; one off for longer than the grace could, in those
minutes, bring back a record whose marker a notice has just dropped). A marker dropped
after that names a record no topic holds: it cannot bring it back into any window.

Those settings are not a given on a running cluster (provisioning never alters a topic it
finds; an operator may raise a retention; brokers' ``log.roll.*`` may lengthen segments).
So the service reads the three topics' effective settings when it starts, and again every
few minutes while it runs, and keeps markers for their measured reach plus the same grace,
never less than :data:`KEEP`, and for good when a topic keeps records for good
(:mod:`._withdrawn_keep`; :meth:`WithdrawnIds.change` says how a new keep takes effect, and
:mod:`._withdrawn_held` how a shorter one's delay outlives a restart).
``tests/unit/desk/test_withdrawn.py`` checks the retention provisioning gives these topics
against :data:`RETENTION`, so that the 90 days hold at provisioning's settings.

The same keep bounds the ids a state keeps as ``gone`` (:mod:`._gone`): an id goes there
when the step has the record or its notice in hand, so, like a marker, no earlier than the
record's timestamp.

Markers are dropped, and added, only while a notice is processed on their partition (a
table write or deletion goes to the changelog partition of the message being processed,
which must be the key's own; a notice is the one message every partition gets). So a
partition holds at most the markers written in the keep (90 days, unless the topics'
settings make it longer) before its latest notice.

Earlier versions' markers: a marker whose value is ``True`` (before the time was kept) is
taken as written when first seen, and given that time: it is dropped a keep later, never
at once, and never sooner than a marker written then would be. The list under
``~withdrawn-<n>`` (one per partition, before 2026-12-05) is read while it is there; when a
notice first reaches its partition its ids become markers of that time and the list goes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import structlog

from broker.desk._withdrawn_held import Held, load_held, save_held
from broker.errors import AccordError, ConfigError
from broker.kafka import partition_for

__all__ = ["KEEP", "REACH", "RETENTION", "SEGMENT", "WithdrawnIds", "is_marker"]

#: The retention provisioning gives each topic a withdrawn record can reach a step through:
#: the delivery topic, the records by child, the households' messages.
RETENTION: Final = {
    "deliver": timedelta(days=30),
    "flags-bychild": timedelta(days=7),
    "flags-byhousehold": timedelta(days=7),
}
#: How much longer than its retention Kafka can keep a record: a segment's life with
#: ``segment.ms`` at the broker's default, 7 days (provisioning sets none), and a check.
SEGMENT: Final = timedelta(days=7, minutes=5)
#: How late, at most, a withdrawn record reaches a step after its marker's time.
REACH: Final = sum((r + SEGMENT for r in RETENTION.values()), timedelta(0))
#: How long a marker is kept at the least, and with provisioning's settings: :data:`REACH`
#: and a grace (see the module's docstring; :mod:`._withdrawn_keep` lengthens it).
KEEP: Final = timedelta(days=90)

log = structlog.get_logger("accord.desk.flags")

_PREFIX: Final = "~withdrawn-"
# Each try lands in a given one of N partitions with chance 1/N: 10,000 tries miss with
# chance (1 - 1/N)**10000, nil for any partition count a desk would use.
_MAX_TRIES: Final = 10_000


def is_marker(key: str) -> bool:
    """Whether a table key is a withdrawn-id marker or list (no child or household key,
    both hex digests, starts like one)."""
    return key.startswith(_PREFIX)


class WithdrawnIds:
    """The withdrawn-id markers of one table, by partition of ``partitions``; ``clock``
    gives the time in seconds. The ``table`` is dict-like (a faust table, with changelog)."""

    def __init__(
        self,
        partitions: Sequence[int],
        clock: Callable[[], float] = time.time,
        keep: timedelta | None = KEEP,
        *,
        saved: Path | None = None,
    ) -> None:
        self._everyone = list(partitions)
        self._clock = clock
        # None: markers kept for good (a topic keeps records for good, see _withdrawn_keep).
        self._keep = _seconds(keep)
        # Keeps the settings gave before a shorter one: (until when, keep), see change().
        self._held: list[tuple[float, float | None]] = []
        self._list_keys: dict[int, str] = {}
        # Where the keep and its delays outlive a restart (._withdrawn_held); None: nowhere.
        self._saved = saved
        if saved is not None:
            self._restore(saved)

    def change(self, keep: timedelta | None) -> None:
        """The keep the topics' settings give now, read again while the service runs.

        A longer keep (or for good) applies at once, to every marker: a raised retention
        keeps longer only records not yet deleted when it was raised, and the grace covers
        the minutes until it was read (the module's docstring).

        A shorter one does not apply at once. The keep it replaces stays in force, for every
        marker (for good, if it was), until the new keep has passed since now. A record
        written before the change may still be on a topic, or copied downstream,
        under the old settings, so its marker needs the old keep from its own time; but the
        new settings delete every record a topic holds at the change within their reach of
        it, so none is left once the new keep (that reach and the grace) has passed since
        the change, and the new keep bounds every record written after it. So a lowering
        never drops a marker its record could still need. The delay is saved (``saved``),
        so a restart within it keeps it; so is the keep, so that settings lowered while the
        service is stopped are held from its start the same way."""
        new = _seconds(keep)
        old = self._keep
        if new == old:
            return
        self.keep()  # a delay already over ends (and is logged) before this one
        self._lower(old, new)
        self._keep = new
        try:
            self._save()
        except OSError as exc:
            # Running on is safer than stopping: the delay holds in memory; only a restart
            # within it would lose it. Loudly, with the error's kind only.
            log.error(  # noqa: TRY400  # the kind only: no traceback in the service's log
                "flags_withdrawn_keep_unsaved",
                error=type(exc).__name__,
                hint="the flag service's datadir could not be written: fix it before "
                "restarting the service",
            )
        log.info(
            "flags_withdrawn_keep_changed",
            keep_days=_days(new),
            was_days=_days(old),
            in_force_days=_days(self.keep()),
            **self._until(),
        )

    def keep(self) -> float | None:
        """The keep in force now, in seconds (None: for good): the settings' latest, or a
        longer one they gave before it that still holds (:meth:`change`)."""
        if self._held:
            now = self._clock()
            if any(now > until for until, _ in self._held):
                was = self._in_force()
                ended = max(until for until, _ in self._held if now > until)
                self._held = [(until, k) for until, k in self._held if now <= until]
                if self._in_force() != was:
                    # Not saved: a delay past its end is dropped on loading too.
                    log.info(
                        "flags_withdrawn_keep_held_ended",
                        held_until=_when(ended),
                        in_force_days=_days(self._in_force()),
                        was_days=_days(was),
                    )
        return self._in_force()

    def _in_force(self) -> float | None:
        keeps = [self._keep, *(k for _, k in self._held)]
        return None if None in keeps else max(k for k in keeps if k is not None)

    def _lower(self, old: float | None, new: float | None) -> None:
        """Hold ``old`` until ``new`` has passed from now, when ``new`` is the shorter."""
        if new is not None and _longer(old, new):
            self._held.append((self._clock() + new, old))

    def _until(self) -> dict[str, str]:
        """When the keep in force falls to the settings' own, if a delay holds it above."""
        longer = [u for u, k in self._held if _longer(k, self._keep)]
        return {"held_until": _when(max(longer))} if longer else {}

    def _restore(self, path: Path) -> None:
        """Take up the delays saved before a restart, and hold the saved keep if the
        settings give a shorter one now (lowered while the service was stopped)."""
        now = self._clock()
        try:
            saved = load_held(path)
        except ValueError as exc:
            # What it held is unknown: the longest it could have held, for good, until the
            # settings' keep has passed from now (as a lowering from for good read now).
            log.warning(
                "flags_withdrawn_keep_file_unreadable",
                error=str(exc),
                hint=f"{path} could not be read: withdrawal markers are kept for good until "
                "the topics' settings' keep has passed from now",
            )
            saved = Held(None, ())
        if saved is not None:
            self._held = [(until, k) for until, k in saved.held if now <= until]
            self._lower(saved.keep, self._keep)
        try:
            self._save()
        except OSError as exc:
            raise ConfigError(
                f"the flag service cannot write {path} ({type(exc).__name__}): it records "
                "the withdrawal markers' keep across restarts"
            ) from None
        if self._until():
            log.info(
                "flags_withdrawn_keep_held",
                keep_days=_days(self._keep),
                in_force_days=_days(self.keep()),
                **self._until(),
            )

    def _save(self) -> None:
        if self._saved is not None:
            save_held(self._saved, self._keep, self._held)

    def holds(self, table: Any, partition: int, event_id: str) -> bool:
        """Whether ``event_id`` is marked withdrawn in ``partition``."""
        if table.get(self.key(partition, event_id)) is not None:
            return True
        # Before 2026-12-05 a partition's withdrawn ids were one list under one key.
        return event_id in (table.get(self.list_key(partition)) or ())

    def note(
        self,
        table: Any,
        partition: int,
        event_ids: Iterable[str],
        markers: Iterable[tuple[str, Any]],
    ) -> None:
        """Mark ``event_ids`` withdrawn in ``partition``, while a message of that partition
        is processed; ``markers`` are the partition's markers now (key, value), of which
        those older than the keep (:data:`KEEP` at least, None for good) are dropped and
        those of earlier versions dated."""
        now = int(self._clock())
        keep = self.keep()
        named = {self.key(partition, e) for e in event_ids}
        listed: list[str] = []
        for key, value in markers:
            if value is None:
                continue
            if isinstance(value, list):
                listed += [str(e) for e in value]
                del table[key]  # its ids are markers of their own, just below
            elif key in named:
                continue  # named again: kept as it is, or dated below
            elif not _dated(value):
                table[key] = now  # an earlier version's: written, at the latest, now
            elif keep is not None and now - value > keep:
                del table[key]  # its record is on no topic any more (module docstring)
        for key in sorted(named | {self.key(partition, e) for e in listed}):
            if not _dated(table.get(key)):
                table[key] = now

    def key(self, partition: int, event_id: str) -> str:
        """The table key marking ``event_id`` withdrawn in ``partition``: one whose own
        partition is ``partition`` (a table write goes to the changelog partition of the
        record being processed), and one per id: a list of them all, rewritten with each
        notice, would pass Kafka's 1 MB record limit at about 25,000 ids (every notice goes
        to every partition) and stop the service."""
        for n in range(_MAX_TRIES):
            key = f"{_PREFIX}{n}-{event_id}"
            if partition_for(key.encode(), self._everyone) == partition:
                return key
        raise AccordError(f"no withdrawn-id key found for partition {partition}")  # a bug

    def list_key(self, partition: int) -> str:
        """The key of ``partition``'s list of withdrawn ids, as written before 2026-12-05."""
        if partition not in self._list_keys:
            n = 0
            while partition_for(f"{_PREFIX}{n}".encode(), self._everyone) != partition:
                n += 1
            self._list_keys[partition] = f"{_PREFIX}{n}"
        return self._list_keys[partition]


def _seconds(keep: timedelta | None) -> float | None:
    return None if keep is None else max(keep, KEEP).total_seconds()


def _longer(keep: float | None, than: float | None) -> bool:
    return than is not None and (keep is None or keep > than)


def _days(keep: float | None) -> float | None:
    return None if keep is None else round(keep / 86400, 2)


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def _dated(value: Any) -> bool:
    # ``True`` is an int too: the marker of a version that kept no time.
    return isinstance(value, int | float) and not isinstance(value, bool)
