"""The worker's check of a record's key and partition, as ``accord policy impact`` makes it
on records the worker read under the partition counts of their day.

The worker refuses a record that is not keyed by its event id, or that sits on a partition
its key does not hash to (Kafka's murmur2) under the topic's count as the worker reads it
(``_ingress._misplaced``). A retained record may predate partitions added since
(docs/operations.md allows adding them once drained): the worker decided it under the count
of its day, and today's count would refuse it. So a record is taken if its key hashes to its
partition under a count the topic can have had when it was written, and under no other.

Which counts those are, the records read say: a partition holding a record stamped before
``t`` existed at ``t``, so a record stamped ``t`` was placed under more partitions than the
highest such one, up to today's count. On a topic that never grew, once every partition
holds a record, that is today's count alone, as the worker's check. Everything this cannot
see only widens the counts taken, never narrows them: a partition added but empty for a
while, early records gone by retention, a ``--since`` that skips them. A record stamped in
the same millisecond as a partition's first is taken as if that partition did not yet
exist: the two may have been written either way round. The stamps are the producer's clock
unless the topic stamps on append: a sender whose clock ran ahead into a growth could have
records refused here that the worker decided.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping

from broker.kafka import Retained, murmur2
from broker.pipeline._stages import Step, Work, forward, quarantine

__all__ = ["FirstStamps", "Keyed", "Placements", "first_stamps"]

#: (topic, partition) -> the earliest timestamp (ms) among its records read
FirstStamps = dict[tuple[str, int], int]


def first_stamps(records: Iterable[Retained], topics: Iterable[str]) -> FirstStamps:
    """For each partition of ``topics`` that ``records`` hold, its earliest record's stamp.
    All the records read, in one process: a share of them would see less history."""
    checked = set(topics)
    first: FirstStamps = {}
    for r in records:
        if r.topic in checked:
            at = (r.topic, r.partition)
            first[at] = min(first.get(at, r.timestamp_ms), r.timestamp_ms)
    return first


class Placements:
    """The partition counts each topic can have had when a record was written (the module's
    docstring says how they are known), and whether a key hashes to a partition under one."""

    def __init__(self, today: Mapping[str, int], first: Mapping[tuple[str, int], int]) -> None:
        self._today = dict(today)
        # Per topic, the partitions' first stamps in order, and beside each the highest
        # partition holding a record by then: bisected per record.
        self._stamps: dict[str, list[int]] = {t: [] for t in self._today}
        self._highest: dict[str, list[int]] = {t: [] for t in self._today}
        for (topic, partition), ms in sorted(first.items(), key=lambda kv: kv[1]):
            if topic in self._today:
                highest = self._highest[topic]
                self._stamps[topic].append(ms)
                highest.append(max(partition, highest[-1] if highest else 0))

    def checked(self, topic: str) -> bool:
        return topic in self._today

    def counts(self, topic: str, at_ms: int) -> range:
        """The counts ``topic`` can have had at ``at_ms``: more than the highest partition
        holding a record stamped strictly before then, up to today's."""
        before = bisect_left(self._stamps[topic], at_ms)
        least = self._highest[topic][before - 1] + 1 if before else 1
        return range(least, self._today[topic] + 1)

    def placed(self, topic: str, key: bytes, partition: int, at_ms: int) -> bool:
        """Whether ``key`` hashes to ``partition`` under a count ``topic`` can have had at
        ``at_ms``: hashed once, as ``partition_for`` hashes it, then taken modulo each."""
        h = murmur2(key) & 0x7FFFFFFF
        return any(h % n == partition for n in self.counts(topic, at_ms))


class Keyed:
    """The worker's check of a record's key and partition (``_ingress._misplaced``), its
    partition taken under any count its topic can have had then (``Placements``)."""

    name = "open"

    def __init__(self, placements: Placements) -> None:
        self._placements = placements  # the topics checked

    def __call__(self, work: Work) -> Step:
        assert work.opened is not None  # noqa: S101  # Open forwarded
        if not self._placements.checked(work.topic):
            return forward()
        if not work.key:
            return quarantine("unkeyed")
        key = work.opened.event_id.encode()
        # ``at`` is the record's own stamp (``_Redecider.take``), to the millisecond.
        at_ms = round(work.at.timestamp() * 1000)
        if work.key != key or not self._placements.placed(work.topic, key, work.partition, at_ms):
            return quarantine("wrong-partition")  # the worker's code for either
        return forward()
