"""The impact run refuses what the worker refuses by a record's key or partition
(``unkeyed``, ``wrong-partition``), in one process or several, so that every event record
read is counted once: compared, or not compared with the worker's reason. A partition its
key hashed to under a count the topic can have had when it was written is taken: a record
published before partitions were added was decided where it sits."""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from broker.kafka import Retained, murmur2, partition_for
from broker.keys import FileKeyStore
from broker.pipeline import compare, redecide_both
from broker.pipeline._impact import Tally
from broker.pipeline._impact_placement import Placements
from broker.pipeline._ingress import _misplaced
from broker.pipeline._stages import Work
from broker.policy import Policy
from broker.synthetic import SyntheticFamilies
from broker.topics import party_of_ingress
from tests.unit.pipeline.conftest import AT, ENVELOPE, POLICIES
from tests.unit.pipeline.test_impact import (  # noqa: F401  # the fixtures, by name
    PARTITIONS,
    _Records,
    changed_policy,
    impact_keys,
    placed,
)


def _event(fam: SyntheticFamilies) -> dict[str, Any]:
    family, postcode = fam.faker.last_name(), fam.postcode(("DY4",))
    child = fam.subject("child", family_name=family, postcode=postcode, school_urn="146201")
    return fam.event(subjects=[child], need_level=3)


def _placements(key: bytes, today: int = PARTITIONS) -> set[int]:
    """The partitions ``key`` hashes to under each count from 1 to ``today``'s."""
    return {partition_for(key, list(range(n))) for n in range(1, today + 1)}


@pytest.mark.parametrize("processes", [1, 2])
def test_a_copy_resent_without_its_key_or_under_another_is_refused_as_the_worker_refuses_it(
    impact_keys: FileKeyStore,  # noqa: F811  # the fixture
    changed_policy: Policy,  # noqa: F811  # the fixture
    processes: int,
) -> None:
    """With two processes a copy under another key went to the other process and was
    decided there as new: 'read' no longer added up to compared and not compared."""
    fam = SyntheticFamilies(seed=3, today=date(2026, 11, 21))
    r = _Records(impact_keys)
    while True:  # an event whose copies below land in both processes, and can be misplaced
        ev = _event(fam)
        key = ev["event_id"].encode()
        nowhere = set(range(PARTITIONS)) - _placements(key)
        if zlib.crc32(key) % 2 != zlib.crc32(b"") % 2 and nowhere:
            break
    first = r.sealed("wmp", ev)
    other = _event(fam)["event_id"].encode()
    r.again(first, key=None)  # unkeyed
    r.again(first, key=other)  # under another event's key: on that key's partition
    # Its key, moved where no partition count ever put it: refused as the worker refuses it.
    r.again(first, partition=min(nowhere))
    r.again(first)  # a replay, as the worker sees it on the original's partition
    r.sealed("wmp", _event(fam))  # another event, decided
    records = r.out
    tally = Tally()
    assert changed_policy.source is not None
    runs = redecide_both(POLICIES, changed_policy.source, records, keystore=impact_keys.path,
                         passphrase=None, envelope=ENVELOPE, processes=processes,
                         tally=tally, partitions=placed(records))  # fmt: skip
    assert tally.not_compared == {"unkeyed": 1, "wrong-partition": 2, "replay": 1}
    impact = compare(*runs, versions=("v1", "v2"))
    read = sum(party_of_ingress(x.topic) is not None for x in records)
    assert (read, tally.compared, impact.events) == (6, 2, 2)
    assert read == tally.compared + sum(tally.not_compared.values())


def test_without_partition_counts_placement_is_not_checked(
    impact_keys: FileKeyStore,  # noqa: F811  # the fixture
    changed_policy: Policy,  # noqa: F811  # the fixture
) -> None:
    """As the worker's own unit tests run it: an unkeyed copy is then a plain replay."""
    fam = SyntheticFamilies(seed=4, today=date(2026, 11, 21))
    r = _Records(impact_keys)
    r.again(r.sealed("wmp", _event(fam)), key=None)
    tally = Tally()
    assert changed_policy.source is not None
    redecide_both(POLICIES, changed_policy.source, r.out, keystore=impact_keys.path,
                  passphrase=None, envelope=ENVELOPE, tally=tally)  # fmt: skip
    assert (tally.compared, dict(tally.not_compared)) == (1, {"replay": 1})


def test_records_published_before_partitions_were_added_are_decided(
    impact_keys: FileKeyStore,  # noqa: F811  # the fixture
    changed_policy: Policy,  # noqa: F811  # the fixture
) -> None:
    """Placed under 3 partitions (and decided by the worker then), the topic grown to 6 once
    drained (docs/operations.md): today's count must not refuse them as wrong-partition."""
    fam = SyntheticFamilies(seed=6, today=date(2026, 11, 21))
    r = _Records(impact_keys)
    for _ in range(12):
        r.sealed("wmp", _event(fam))
    tally = Tally()
    assert changed_policy.source is not None
    redecide_both(POLICIES, changed_policy.source, r.out, keystore=impact_keys.path,
                  passphrase=None, envelope=ENVELOPE, tally=tally,
                  partitions=dict.fromkeys(placed(r.out), PARTITIONS * 2))  # fmt: skip
    assert "wrong-partition" not in tally.not_compared
    assert tally.compared == 12


def _refused_by_worker(rec: Retained, event_id: str, count: int = PARTITIONS) -> str | None:
    """The worker's own check (``_ingress._misplaced``), under ``count`` partitions."""
    work = Work(rec.topic, rec.partition, rec.offset, rec.value or b"", (), AT, rec.key,
                partitions=count)  # fmt: skip
    return _misplaced(work, event_id)


def _keyed(fam: SyntheticFamilies, want: Callable[[int], bool], shard: int = -1) -> dict[str, Any]:
    """An event whose key's murmur2 (as ``partition_for`` takes it) satisfies ``want``, and
    if ``shard`` is given, that two processes' ``_shards`` deal to that one."""
    while True:
        key = (ev := _event(fam))["event_id"].encode()
        if want(murmur2(key) & 0x7FFFFFFF) and shard in (-1, zlib.crc32(key) % 2):
            return ev


@pytest.mark.parametrize("processes", [1, 2])
def test_on_a_topic_never_grown_every_record_the_worker_refuses_as_misplaced_is_refused(
    impact_keys: FileKeyStore,  # noqa: F811  # the fixture
    changed_policy: Policy,  # noqa: F811  # the fixture
    processes: int,
) -> None:
    """A sender whose client places keys by CRC32 (librdkafka's default), on a topic whose
    every partition held records before: each record the worker's ``Open`` quarantines as
    ``wrong-partition`` is refused so here, those on a partition a smaller count would give
    its key too (it was taken under any count up to today's: every record on partition 0)."""
    fam = SyntheticFamilies(seed=8, today=date(2026, 11, 21))
    r = _Records(impact_keys)
    for p in range(PARTITIONS):  # each partition holds a record first, as on a topic in use
        r.sealed("wmp", _keyed(fam, lambda h, p=p: h % PARTITIONS == p))
    refused = older = 0
    for _ in range(24):
        ev = _event(fam)
        key = ev["event_id"].encode()
        crc = zlib.crc32(key) % PARTITIONS
        r.sealed("wmp", ev)
        rec = r.out[-1] = dataclasses.replace(r.out[-1], partition=crc)
        if _refused_by_worker(rec, ev["event_id"]) is not None:
            refused += 1
            older += crc in _placements(key)
    assert older  # seeded: some a smaller count places there (the old check took them)
    assert refused < 24  # and some decided
    tally = Tally()
    assert changed_policy.source is not None
    redecide_both(POLICIES, changed_policy.source, r.out, keystore=impact_keys.path,
                  passphrase=None, envelope=ENVELOPE, processes=processes, tally=tally,
                  partitions=placed(r.out))  # fmt: skip
    assert dict(tally.not_compared) == {"wrong-partition": refused}
    assert tally.compared == PARTITIONS + 24 - refused


@pytest.mark.parametrize("processes", [1, 2])
def test_across_a_growth_records_are_taken_under_the_count_of_their_day_and_no_other(
    impact_keys: FileKeyStore,  # noqa: F811  # the fixture
    changed_policy: Policy,  # noqa: F811  # the fixture
    processes: int,
) -> None:
    """Grown from 3 partitions to 6 once drained: a record from before is taken where 3 put
    it, though 6 would not; once a new partition holds records, one placed as 3 would is
    refused as the worker refuses it, one placed as 6 would is taken, and a pre-growth
    event re-sent where 6 puts it is a replay of its id. In two processes too, though the
    one the stale records go to holds no record showing the growth."""
    old, new = PARTITIONS, PARTITIONS * 2
    fam = SyntheticFamilies(seed=11, today=date(2026, 11, 21))
    r = _Records(impact_keys)
    before = [r.sealed("wmp", _keyed(fam, lambda h: h % old != h % new)) for _ in range(4)]
    grown = r.sealed("wmp", _keyed(fam, lambda h: h % new == new - 1, shard=0))
    r.out[-1] = dataclasses.replace(grown, partition=new - 1)  # the last new partition's
    stale = []
    for i in range(8):  # alternately placed as 3 partitions would (stale), and as 6 do
        ev = _keyed(fam, lambda h: h % old != h % new, shard=1)
        h = murmur2(ev["event_id"].encode()) & 0x7FFFFFFF
        r.sealed("wmp", ev)
        r.out[-1] = dataclasses.replace(r.out[-1], partition=h % (old if i % 2 else new))
        if i % 2:
            stale.append(r.out[-1])
    assert all(_refused_by_worker(x, x.key.decode(), new) for x in stale if x.key)
    h = murmur2(before[0].key or b"") & 0x7FFFFFFF
    r.again(before[0], partition=h % new)  # re-sent after the growth: where 6 puts it
    tally = Tally()
    assert changed_policy.source is not None
    redecide_both(POLICIES, changed_policy.source, r.out, keystore=impact_keys.path,
                  passphrase=None, envelope=ENVELOPE, processes=processes, tally=tally,
                  partitions=dict.fromkeys(placed(r.out), new))  # fmt: skip
    assert dict(tally.not_compared) == {"wrong-partition": 4, "replay": 1}
    assert tally.compared == 4 + 1 + 4


def test_a_misplaced_record_leaves_its_id_for_the_copy_sent_where_its_key_hashes(
    impact_keys: FileKeyStore,  # noqa: F811  # the fixture
    changed_policy: Policy,  # noqa: F811  # the fixture
) -> None:
    """As the worker: quarantined in ``open``, the misplaced record spends no id, so its
    re-send on the right partition is decided, not a replay."""
    fam = SyntheticFamilies(seed=9, today=date(2026, 11, 21))
    r = _Records(impact_keys)
    while True:  # an event with a partition no count puts it on
        ev = _event(fam)
        if nowhere := set(range(PARTITIONS)) - _placements(ev["event_id"].encode()):
            break
    first = r.sealed("wmp", ev)
    r.out[-1] = dataclasses.replace(first, partition=min(nowhere))
    r.again(first)  # on today's placement: decided
    tally = Tally()
    assert changed_policy.source is not None
    redecide_both(POLICIES, changed_policy.source, r.out, keystore=impact_keys.path,
                  passphrase=None, envelope=ENVELOPE, tally=tally,
                  partitions=placed(r.out))  # fmt: skip
    assert (tally.compared, dict(tally.not_compared)) == (1, {"wrong-partition": 1})


@pytest.mark.parametrize("processes", [1, 2])
def test_two_senders_events_under_one_id_are_both_decided(
    impact_keys: FileKeyStore,  # noqa: F811  # the fixture
    changed_policy: Policy,  # noqa: F811  # the fixture
    processes: int,
) -> None:
    """The worker keeps replay ids per input partition (one sender's): the health service's
    event under the police's id is its own, not a replay, and its decisions are its own."""
    fam = SyntheticFamilies(seed=5, today=date(2026, 11, 21))
    r = _Records(impact_keys)
    family, postcode = fam.faker.last_name(), fam.postcode(("DY4",))
    child = fam.subject("child", family_name=family, postcode=postcode, school_urn="146201")
    police = fam.event(subjects=[child], need_level=4)
    health = {**fam.event("health.ae_attendance", "swbh", subjects=[child], need_level=4),
              "event_id": police["event_id"]}  # fmt: skip
    r.sealed("wmp", police)
    r.sealed("swbh", health)
    tally = Tally()
    assert changed_policy.source is not None
    runs = redecide_both(POLICIES, changed_policy.source, r.out, keystore=impact_keys.path,
                         passphrase=None, envelope=ENVELOPE, processes=processes,
                         tally=tally, partitions=placed(r.out))  # fmt: skip
    assert (tally.compared, dict(tally.not_compared)) == (2, {})
    assert {k[0] for k in runs[0]} == {r.out[0].topic, r.out[1].topic}
    assert compare(*runs, versions=("v1", "v2")).events == 2


def test_a_decide_that_raises_is_counted_as_the_worker_quarantines_it(
    impact_keys: FileKeyStore,  # noqa: F811  # the fixture
    changed_policy: Policy,  # noqa: F811  # the fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``stage-failed``, as the worker's run_chain says: not ``no-candidate``."""

    def broken(*_: object, **__: object) -> None:
        raise ValueError("a bug in the engine")

    monkeypatch.setattr("broker.pipeline._ingress.Decide.decisions", broken)
    fam = SyntheticFamilies(seed=7, today=date(2026, 11, 21))
    r = _Records(impact_keys)
    r.sealed("wmp", _event(fam))
    tally = Tally()
    assert changed_policy.source is not None
    redecide_both(POLICIES, changed_policy.source, r.out, keystore=impact_keys.path,
                  passphrase=None, envelope=ENVELOPE, tally=tally)  # fmt: skip
    assert (tally.compared, dict(tally.not_compared)) == (0, {"stage-failed": 1})


def test_events_is_fewer_than_compared_when_a_decide_raised_under_one_bundle_only(
    impact_keys: FileKeyStore,  # noqa: F811  # the fixture
    changed_policy: Policy,  # noqa: F811  # the fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The one way the two counts part (schemas/audit-chain.md's ``events``): the new
    bundle's Decide raised on the first copy, spending no id there, so it decides the re-sent
    copy, which the bundle in force, having decided the first, refuses as a replay: two
    records compared, one event."""
    from broker.pipeline._ingress import Decide

    real = Decide.decisions
    raised: list[str] = []

    def once_under_the_new_bundle(self: Decide, work: Any, **kw: Any) -> Any:
        if self.services.policy.version == changed_policy.version and not raised:
            raised.append(work.topic)
            raise ValueError("a bug in the engine")
        return real(self, work, **kw)

    monkeypatch.setattr(Decide, "decisions", once_under_the_new_bundle)
    fam = SyntheticFamilies(seed=10, today=date(2026, 11, 21))
    r = _Records(impact_keys)
    r.again(r.sealed("wmp", _event(fam)))
    tally = Tally()
    assert changed_policy.source is not None
    runs = redecide_both(POLICIES, changed_policy.source, r.out, keystore=impact_keys.path,
                         passphrase=None, envelope=ENVELOPE, tally=tally,
                         partitions=placed(r.out))  # fmt: skip
    assert raised
    assert (tally.compared, dict(tally.not_compared)) == (2, {})
    assert compare(*runs, versions=("v1", "v2")).events == 1


def test_the_counts_taken_at_a_time_exceed_the_highest_partition_holding_a_record_before() -> None:
    """A partition's first record in the same millisecond proves nothing (either may have
    been written first); with no record before, any count up to today's is taken."""
    at = Placements({"t": 6}, {("t", 0): 1000, ("t", 2): 1000, ("t", 5): 2000, ("u", 9): 0})
    assert at.counts("t", 999) == range(1, 7)
    assert at.counts("t", 1000) == range(1, 7)
    assert at.counts("t", 1001) == range(3, 7)
    assert at.counts("t", 2001) == range(6, 7)
    assert not at.checked("u")
