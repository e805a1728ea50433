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
``cleanup.policy`` when it starts, and keeps each marker for :func:`keep_for` of them:

- at least :data:`~._withdrawn.KEEP`, never less (lower settings keep it 90 days);
- otherwise the measured reach plus :data:`GRACE`, the margin the defaults give (so each
  day of retention or segment life beyond them keeps markers a day longer);
- for good (None: never dropped, as before 2026-12-05) when any of them keeps records for
  good (``retention.ms`` -1, or a ``cleanup.policy`` without ``delete``), or its settings
  cannot be read or understood. Each logs a warning naming the topic and setting.

Lengthening, not refusing to start: a raised retention is a legitimate thing to do, and the
only cost of keeping markers longer is a larger table. The settings are read only at
start: a change made while the service runs takes effect at its next start, and the grace
covers a restart within it (a record held longer by a raised retention is one not yet
deleted when it was raised, so no older than the old reach).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

import structlog

from broker.config import KafkaSettings
from broker.desk._withdrawn import KEEP, REACH
from broker.kafka import KafkaClients, topic_configs
from broker.topics import deliver, desk_flags, desk_flags_internal

__all__ = ["CHECK", "GRACE", "SETTINGS", "Keep", "keep_for", "withdrawn_keep"]

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


@dataclass(frozen=True, slots=True)
class Keep:
    """How long to keep markers (None: for good), and why, when it is not the default."""

    keep: timedelta | None
    reach: timedelta | None = None
    reason: str | None = None


def keep_for(configs: Mapping[str, Mapping[str, str] | None]) -> Keep:
    """The markers' keep for the effective settings of the topics a withdrawn record reaches
    a step through (topic name: settings, None when they could not be read)."""
    reach = timedelta(0)
    for topic, settings in configs.items():
        if settings is None:
            return Keep(None, reason=f"{topic}: its settings could not be read")
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


async def withdrawn_keep(kafka: KafkaSettings, party: str) -> timedelta | None:
    """How long ``party``'s flag service keeps withdrawn-id markers on this cluster (None: for
    good), read when it starts; a warning says why when it is not 90 days."""
    _, bychild, _, byhousehold = desk_flags_internal(party)
    names = [deliver(party), bychild, byhousehold]  # as _withdrawn.RETENTION's
    configs = await topic_configs(
        KafkaClients(kafka), names, SETTINGS, client_id=f"{desk_flags(party)}-check"
    )
    found = keep_for(configs)
    if found.keep is None:
        log.warning(
            "flags_withdrawn_kept_for_good",
            reason=found.reason,
            hint="a withdrawn record could stay on this topic for good, so its marker does "
            "too; give the topic a finite retention and cleanup.policy delete (or, if its "
            "settings could not be read, run 'accord kafka provision' as the admin) and "
            "restart the service to drop markers again",
        )
    elif found.keep > KEEP:
        log.warning(
            "flags_withdrawn_kept_longer",
            keep_days=round(found.keep / timedelta(days=1), 2),
            reach_days=round((found.reach or timedelta(0)) / timedelta(days=1), 2),
            settings=configs,
            hint="the delivery or re-keyed topics keep records longer than provisioning "
            "sets (retention.ms, or segment.ms/log.roll.*): markers are kept as long, and a "
            "grace, after it",
        )
    return found.keep
