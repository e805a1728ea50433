"""How current the desk's flags are: what the flag service has read of the delivery topic.

The flag service commits its reading of the party's delivery topic (group
``accord.desk.<party>.flags-open``) after every batch, and at least once a minute while it
has read everything, each commit stamped with its time (``._flags_source``). The desk, which
holds the same Kafka login, asks Kafka for those commits and for the topic's end every
:data:`EVERY` seconds:

- ``reported_at``: the newest commit's time. Older than :data:`STALE_AFTER` means the flag
  service is stopped, stuck or cut off from Kafka: records are not being checked against the
  rules, and the home page says so plainly;
- ``backlog``: records on the topic after what it committed. A transaction's commit marker
  takes an offset too, so up to one a partition may be a marker, not a record: the page
  speaks of a backlog only beyond that.

Nothing here names a child or a record. A desk that cannot ask Kafka keeps its last answer,
and says when it was; ``unchecked_since`` then says since when it cannot reach Kafka, which
the home page leads with, alone: no records or flags arrive, whatever the flag service does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import structlog

from broker.errors import AccordError, TransportError
from broker.kafka import KafkaClients, stop_bounded, translated
from broker.topics import deliver, desk_flags_reader

__all__ = ["EVERY", "STALE_AFTER", "FlagsFreshness", "Freshness"]

log = structlog.get_logger("accord.desk")
EVERY: Final = 30.0
STALE_AFTER: Final = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Freshness:
    """What the desk last learnt (all None until it has asked Kafka once)."""

    checked_at: datetime | None = None
    reported_at: datetime | None = None  # the flag service's newest commit
    backlog: int | None = None  # records (and markers) after its commits
    partitions: int = 0
    stale: bool = False
    unchecked_since: datetime | None = None  # Kafka did not answer the last ask

    @property
    def behind(self) -> int:
        """Records it certainly has not read yet (0 when any could be markers)."""
        if self.backlog is None:
            return 0
        return self.backlog if self.backlog > self.partitions else 0


def _stamp(metadata: str | None) -> float | None:
    try:
        at = json.loads(metadata or "")["at"]
    except (ValueError, KeyError, TypeError):
        return None
    return float(at) if isinstance(at, int | float) else None


class FlagsFreshness:
    """Asks Kafka how far the flag service has read (module docstring); ``current`` holds
    the answer for the home page."""

    def __init__(
        self, kafka: KafkaClients, party: str, clock: Callable[[], datetime],
        *, stale_after: timedelta = STALE_AFTER,
    ) -> None:  # fmt: skip
        self._kafka = kafka
        self._party = party
        self._clock = clock
        self._stale_after = stale_after
        self.current = Freshness()

    def judged(self, fresh: Freshness) -> Freshness:
        """``fresh`` with ``stale`` set as of now."""
        now = self._clock()
        stale = fresh.reported_at is None or now - fresh.reported_at > self._stale_after
        return Freshness(fresh.checked_at, fresh.reported_at, fresh.backlog, fresh.partitions,
                         stale, fresh.unchecked_since)  # fmt: skip

    async def check(self) -> Freshness:
        """Ask Kafka now; the answer (also kept as ``current``)."""
        try:
            committed, ends = await self._ask()
        except AccordError as exc:
            log.warning("desk_flags_freshness_unknown", error=type(exc).__name__)
            was = self.current
            since = was.unchecked_since or self._clock()
            self.current = self.judged(
                Freshness(was.checked_at, was.reported_at, was.backlog, was.partitions,
                          unchecked_since=since)
            )  # fmt: skip
            return self.current
        stamps = [t for _, meta in committed.values() if (t := _stamp(meta)) is not None]
        backlog = sum(max(0, end - max(committed.get(tp, (0, None))[0], 0))
                      for tp, end in ends.items())  # fmt: skip
        reported = datetime.fromtimestamp(max(stamps), UTC) if stamps else None
        self.current = self.judged(Freshness(self._clock(), reported, backlog, len(ends)))
        return self.current

    async def _ask(self) -> tuple[dict[Any, tuple[int, str | None]], dict[Any, int]]:
        topic = deliver(self._party)
        admin: Any = self._kafka.admin(f"accord-desk-{self._party}-freshness")
        consumer = self._kafka.consumer(client_id=f"accord-desk-{self._party}-freshness")
        async with translated(f"asking how far the flag service has read {topic}"):
            try:
                await admin.start()
                found = await admin.list_consumer_group_offsets(desk_flags_reader(self._party))
                await consumer.start()
                # Without a group, a consumer subscribed to a topic is assigned all of it.
                consumer.subscribe([topic])
                for _ in range(50):
                    if tps := sorted(consumer.assignment()):
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise TransportError(f"the partitions of {topic} could not be assigned")
                ends = {tp: int(e) for tp, e in (await consumer.end_offsets(tps)).items()}
            finally:
                with contextlib.suppress(Exception):
                    await admin.close()
                await stop_bounded(consumer)
        committed = {
            tp: (int(o.offset), o.metadata) for tp, o in found.items() if tp.topic == topic
        }
        return committed, ends

    async def run(self, stop: asyncio.Event, *, every: float = EVERY) -> None:
        """Check every ``every`` seconds until ``stop`` is set."""
        while not stop.is_set():
            await self.check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)
