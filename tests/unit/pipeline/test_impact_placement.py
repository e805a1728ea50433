"""The impact run refuses what the worker refuses by a record's key or partition
(``unkeyed``, ``wrong-partition``), in one process or several, so that every event record
read is counted once: compared, or not compared with the worker's reason. A partition its
key hashed to under a smaller count is taken: a record published before partitions were
added was decided where it sits."""

from __future__ import annotations

import dataclasses
import zlib
from datetime import date
from typing import Any

import pytest

from broker.kafka import partition_for
from broker.keys import FileKeyStore
from broker.pipeline import compare, redecide_both
from broker.pipeline._impact import Tally
from broker.policy import Policy
from broker.synthetic import SyntheticFamilies
from broker.topics import party_of_ingress
from tests.unit.pipeline.conftest import ENVELOPE, POLICIES
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


@pytest.mark.parametrize("processes", [1, 2])
def test_records_placed_by_another_hash_on_a_topic_never_grown_are_refused_as_the_worker_does(
    impact_keys: FileKeyStore,  # noqa: F811  # the fixture
    changed_policy: Policy,  # noqa: F811  # the fixture
    processes: int,
) -> None:
    """A sender whose client places keys by CRC32 (librdkafka's default): each record on a
    partition its key hashes to under no count up to today's is ``wrong-partition``, never
    compared, as the worker's ``Open`` quarantines it; they were all decided and compared."""
    fam = SyntheticFamilies(seed=8, today=date(2026, 11, 21))
    r = _Records(impact_keys)
    refused = 0
    for _ in range(12):
        ev = _event(fam)
        key = ev["event_id"].encode()
        crc = zlib.crc32(key) % PARTITIONS
        r.sealed("wmp", ev)
        r.out[-1] = dataclasses.replace(r.out[-1], partition=crc)
        refused += crc not in _placements(key)
    assert 0 < refused < 12  # seeded: some refused, some decided
    tally = Tally()
    assert changed_policy.source is not None
    redecide_both(POLICIES, changed_policy.source, r.out, keystore=impact_keys.path,
                  passphrase=None, envelope=ENVELOPE, processes=processes, tally=tally,
                  partitions=placed(r.out))  # fmt: skip
    assert tally.compared == 12 - refused
    assert dict(tally.not_compared) == {"wrong-partition": refused}


def test_a_misplaced_record_leaves_its_id_for_the_copy_sent_where_its_key_hashes(
    impact_keys: FileKeyStore,  # noqa: F811  # the fixture
    changed_policy: Policy,  # noqa: F811  # the fixture
) -> None:
    """As the worker: quarantined in ``open``, the misplaced record spends no id, so its
    re-send on the right partition is decided, not a replay; a copy on a partition the key
    hashed to under a smaller count is the same event again, a replay."""
    fam = SyntheticFamilies(seed=9, today=date(2026, 11, 21))
    r = _Records(impact_keys)
    while True:  # an event with a partition no count puts it on, and an earlier count's
        ev = _event(fam)
        key = ev["event_id"].encode()
        today = partition_for(key, list(range(PARTITIONS)))
        nowhere = set(range(PARTITIONS)) - _placements(key)
        earlier = _placements(key) - {today}
        if nowhere and earlier:
            break
    first = r.sealed("wmp", ev)
    r.out[-1] = dataclasses.replace(first, partition=min(nowhere))
    r.again(first)  # on today's placement: decided
    r.again(first, partition=min(earlier))  # where a smaller count put it: a replay
    tally = Tally()
    assert changed_policy.source is not None
    redecide_both(POLICIES, changed_policy.source, r.out, keystore=impact_keys.path,
                  passphrase=None, envelope=ENVELOPE, tally=tally,
                  partitions=placed(r.out))  # fmt: skip
    assert (tally.compared, dict(tally.not_compared)) == (1, {"wrong-partition": 1, "replay": 1})


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
