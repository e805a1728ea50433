"""The flag service's per-record steps (faust's topics and tables replaced by fakes): a flag
(or a household's message) is on its topic before the state records it, a flag already on the
topic is never sent again, and a withdrawal touches only its own partition's keys."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from broker._canonical import canonical_json
from broker.config import EnvelopeSettings, KafkaSettings, KemSuite
from broker.desk import FlagServiceOptions, _flags_app, child_key, household_key
from broker.desk._flags_app import _Service
from broker.envelope import Sealer
from broker.errors import TransportError
from broker.events import Delivery
from broker.kafka import partition_for
from broker.keys import FileKeyStore
from broker.policy import load_bundle
from broker.topics import SCHEMA_SHARED, deliver

REPO = Path(__file__).resolve().parents[3]
SECRET = b"s" * 32
NHS = ("9993080233", "9990025312", "9995754649", "9995335530", "9994863975", "9997032829")


class FakeTopic:
    def __init__(self, log: list[tuple[str, Any]], name: str = "") -> None:
        self.log = log
        self.name = name

    async def send(self, *, key: bytes | None, value: bytes, **_: Any) -> Any:
        self.log.append((f"send{self.name}", json.loads(value)))

        async def acked() -> None:
            self.log.append((f"acked{self.name}", key))

        return acked()


class FakeTable(dict[str, Any]):
    def __init__(self, log: list[tuple[str, Any]], name: str = "") -> None:
        super().__init__()
        self.log = log
        self.name = name

    def __setitem__(self, key: str, value: Any) -> None:
        self.log.append((f"state{self.name}", key))
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.log.append((f"deleted{self.name}", key))
        super().__delitem__(key)


def _service(
    tmp_path: Path, keys: FileKeyStore | None = None, clock: Callable[[], float] = time.time
) -> tuple[_Service, list[tuple[str, Any]]]:
    policy = load_bundle(REPO / "policies")
    opts = FlagServiceOptions(
        party="sandwell-coord",
        kafka=KafkaSettings(),
        keystore=keys or FileKeyStore(tmp_path / "keys", create=True),
        rules=policy.flag_rules,
        linkage_secret=SECRET,
        datadir=tmp_path,
        partitions=3,
    )
    log: list[tuple[str, Any]] = []
    topics = (FakeTopic(log), FakeTopic(log, "-household"), FakeTopic(log))
    tables = (FakeTable(log), FakeTable(log, "-household"))
    service = _Service(opts, topics, tables, clock=clock)
    service.published = set()  # as read from an empty flags topic at start
    return service, log


HOME = {"address": "14 Tame Road", "postcode": "DY4 7JQ"}
ELSEWHERE = {"address": "9 Hill Road", "postcode": "B69 1AB"}


def _states_by_key(table: dict[str, Any]) -> dict[str, Any]:
    """A table's window states by key (not the withdrawn ids kept beside them)."""
    return {k: v for k, v in table.items() if not k.startswith("~withdrawn-")}


def _states(table: dict[str, Any]) -> list[Any]:
    return list(_states_by_key(table).values())


async def _household_messages(service: _Service, log: list[tuple[str, Any]]) -> list[Any]:
    """Two children at one address, each with a domestic abuse record: the messages the
    child step sends the household step."""
    for i, nhs in enumerate(NHS[:2]):
        await service.on_child_record(
            _record(f"e{i}", nhs, need=2, home=True, cats=("domestic_abuse",)), 0
        )
    return [body for step, body in log if step == "send-household"]


def _record(
    event_id: str, nhs: str, need: int = 4, *, home: bool = False, cats: tuple[str, ...] = (),
    at: dict[str, str] | None = None,
) -> bytes:  # fmt: skip
    """A child step's message as a service before 2026-12-07 wrote it (no ``named``), placing
    the child at ``HOME`` (``home``) or ``at`` another address."""
    child = child_key(SECRET, {"nhs_number": nhs})
    record = {"event_id": event_id, "occurred_at": "2026-10-01T10:00:00+00:00",
              "sender": "wmp", "type": "police.child_concern", "need_level": need,
              "categories": list(cats)}  # fmt: skip
    house = household_key(SECRET, at or HOME) if home or at else None
    return json.dumps({"child": child, "household": house, "residents": [child],
                       "record": record}).encode()  # fmt: skip


async def test_a_flag_is_acknowledged_before_the_state_that_records_it(tmp_path: Path) -> None:
    service, log = _service(tmp_path)
    await service.on_child_record(_record("e1", NHS[0]), 0)
    steps = [step for step, _ in log]
    assert steps == ["send", "acked", "state"]
    assert log[0][1]["rule"] == "need-level-4"


async def test_a_flag_already_on_the_topic_is_not_sent_again(tmp_path: Path) -> None:
    """After a crash between the flag and the state: the record comes again, state lacks it."""
    service, log = _service(tmp_path)
    await service.on_child_record(_record("e1", NHS[0]), 0)
    sent = log[0][1]["flag_id"]
    restarted, log2 = _service(tmp_path)
    restarted.published = {sent}  # read from the flags topic at start
    await restarted.on_child_record(_record("e1", NHS[0]), 0)
    assert [step for step, _ in log2] == ["state"]  # the window still learns the record


async def test_a_withdrawal_changes_only_its_own_partitions_children(tmp_path: Path) -> None:
    service, log = _service(tmp_path)
    keys = {}
    for i, nhs in enumerate(NHS):
        await service.on_child_record(_record(f"e{i}", nhs, need=2), 0)
        keys[child_key(SECRET, {"nhs_number": nhs})] = f"e{i}"
    everyone = list(range(3))
    withdraw = json.dumps({"withdraw": list(keys.values())}).encode()
    for p in everyone:
        log.clear()
        await service.on_child_record(withdraw, p)
        changed = {key for step, key in log if step == "state"}
        mine = {k for k in keys if partition_for(k.encode(), everyone) == p}
        # The children's, and a key per withdrawn id, each of p too.
        held = changed - mine
        assert len(held) == len(keys)
        assert all(k.startswith("~withdrawn-") for k in held)
        assert all(partition_for(k.encode(), everyone) == p for k in held)
    assert all(not state["recs"] for state in _states(service.windows))


async def test_a_households_message_is_acknowledged_before_the_childs_state(
    tmp_path: Path,
) -> None:
    service, log = _service(tmp_path)
    await service.on_child_record(_record("e1", NHS[0], need=2, home=True), 0)
    assert [step for step, _ in log] == ["send-household", "acked-household", "state"]
    message = log[0][1]
    assert message["household"] == household_key(SECRET, HOME)
    assert set(message["rules"]) == {"household-domestic-abuse"}
    # A child never placed at an address sends no household anything.
    log.clear()
    await service.on_child_record(_record("e2", NHS[1], need=2), 0)
    assert [step for step, _ in log] == ["state"]


async def test_a_household_flag_is_acknowledged_before_the_households_state(
    tmp_path: Path,
) -> None:
    service, log = _service(tmp_path)
    messages = await _household_messages(service, log)
    log.clear()
    for body in messages:
        await service.on_household_record(json.dumps(body).encode(), 0)
    steps = [step for step, _ in log]
    # The first child alone is no household of two; the second makes it one, and the rule,
    # fired for the second child, is checked at once for the first, already at the address:
    # both flags are acknowledged before the state that records them.
    assert steps == ["state-household", "send", "acked", "send", "acked", "state-household"]
    flag, sibling = log[1][1], log[3][1]
    assert flag["rule"] == sibling["rule"] == "household-domestic-abuse"
    assert flag["household"] == sibling["household"] == household_key(SECRET, HOME)
    assert flag["event_ids"] == sibling["event_ids"] == ["e0", "e1"]
    assert flag["child"] != sibling["child"]
    # Neither the household's messages nor its flags carry the address or the postcode.
    text = json.dumps([flag, sibling, *messages]).casefold()
    assert "tame" not in text
    assert "dy4" not in text
    # Processed again after a restart: nothing sent, nothing changed.
    log.clear()
    await service.on_household_record(json.dumps(messages[1]).encode(), 0)
    assert [step for step, _ in log] == ["state-household"]


async def test_a_child_placed_elsewhere_is_no_longer_its_old_households_sibling(
    tmp_path: Path,
) -> None:
    """The review's case a, through the service: the child's step tells the household the
    child left (acknowledged before the child's state), which then flags only the child
    named in the next incident there."""
    service, log = _service(tmp_path)
    home, moved = household_key(SECRET, HOME), child_key(SECRET, {"nhs_number": NHS[1]})
    await service.on_child_record(_record("b0", NHS[1], need=2, home=True), 0)
    await service.on_child_record(_record("b5", NHS[1], need=2, at=ELSEWHERE), 0)
    await service.on_child_record(
        _record("a9", NHS[0], need=2, home=True, cats=("domestic_abuse",)), 0
    )
    steps = [step for step, _ in log]
    # b5's own message (to its new household), then the old one told, then b5's state.
    assert steps[3:8] == ["send-household", "acked-household"] * 2 + ["state"]
    assert log[5][1] == {"left": home, "child": moved}
    messages = [body for step, body in log if step == "send-household"]
    log.clear()
    for body in messages:
        await service.on_household_record(json.dumps(body).encode(), 0)
    flags = [body for step, body in log if step == "send"]
    assert [(f["rule"], f["child"]) for f in flags] == [
        ("household-domestic-abuse", child_key(SECRET, {"nhs_number": NHS[0]}))
    ]
    assert service.households[home]["away"] == [moved]
    # Placed there again, the child is a sibling there again (and the other told it left).
    log.clear()
    await service.on_child_record(_record("b12", NHS[1], need=2, home=True), 0)
    back, told = [body for step, body in log if step == "send-household"]
    assert told == {"left": household_key(SECRET, ELSEWHERE), "child": moved}
    await service.on_household_record(json.dumps(back).encode(), 0)
    assert "away" not in service.households[home]


async def test_a_withdrawal_changes_only_its_own_partitions_households(tmp_path: Path) -> None:
    service, log = _service(tmp_path)
    homes = [{"address": f"{i} Tame Road", "postcode": "DY4 7JQ"} for i in range(6)]
    bodies = []
    for i, home in enumerate(homes):
        rules = {"household-domestic-abuse": {"aggregates": {}, "window": []}}
        body = {"household": household_key(SECRET, home), "child": f"c{i}",
                "residents": [f"c{i}"], "record": [0, f"e{i}", "wmp", "t", 2, []],
                "rules": rules}  # fmt: skip
        bodies.append(json.dumps(body).encode())
        await service.on_household_record(bodies[-1], 0)
    everyone = list(range(3))
    withdraw = json.dumps({"withdraw": [f"e{i}" for i in range(6)]}).encode()
    for p in everyone:
        log.clear()
        await service.on_household_record(withdraw, p)
        changed = {key for step, key in log if step == "state-household"}
        assert changed == {
            k for k in service.households if partition_for(k.encode(), everyone) == p
        }
    assert all(not state["recs"] for state in _states(service.households))
    # Replayed after the withdrawal (a restart's reprocessing), no record comes back.
    for body in bodies:
        await service.on_household_record(body, 0)
    assert all(not state["recs"] for state in _states(service.households))


async def test_the_flags_topic_is_read_once_when_both_agents_raise_their_first_flag_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second, slower read must not replace the first after a flag was sent and noted."""
    reads: list[str] = []

    async def read(kafka: KafkaSettings, topic: str) -> set[str]:
        reads.append(topic)
        await asyncio.sleep(0.05)
        return set()

    monkeypatch.setattr(_flags_app, "published_flag_ids", read)
    service, log = _service(tmp_path)
    service.published = None  # nothing read yet: the service has just started
    await asyncio.gather(
        service.on_child_record(_record("e1", NHS[0]), 0),
        service.on_child_record(_record("e2", NHS[1]), 1),
    )
    assert reads == ["accord.desk.sandwell-coord.flags"]
    sent = {body["flag_id"] for step, body in log if step == "send"}
    assert len(sent) == 2
    assert service.published == sent


async def test_a_record_whose_withdrawal_notice_was_read_first_never_counts(
    tmp_path: Path,
) -> None:
    """A notice and its record travel on different delivery partitions: a backlog can bring
    the notice to the flag steps first; the record must then count nowhere."""
    service, log = _service(tmp_path)
    everyone = list(range(3))
    child = child_key(SECRET, {"nhs_number": NHS[0]})
    assert child is not None
    p = partition_for(child.encode(), everyone)
    withdraw = json.dumps({"withdraw": ["e1"]}).encode()
    await service.on_child_record(withdraw, p)
    # Kept under a key of the partition's own, so the changelog write lands where it belongs.
    [held] = [key for step, key in log if step == "state"]
    assert partition_for(held.encode(), everyone) == p
    log.clear()
    await service.on_child_record(_record("e1", NHS[0]), p)  # need level 4: would flag
    assert log == []
    await service.on_child_record(_record("e2", NHS[0]), p)  # not withdrawn: counts
    assert [step for step, _ in log] == ["send", "acked", "state"]
    # The household step the same way, on its own table.
    rules = {"household-domestic-abuse": {"aggregates": {}, "window": []}}
    body = {"household": household_key(SECRET, HOME), "child": child, "residents": [child],
            "record": [0, "e1", "wmp", "t", 2, []], "rules": rules}  # fmt: skip
    q = partition_for(str(body["household"]).encode(), everyone)
    await service.on_household_record(withdraw, q)
    log.clear()
    await service.on_household_record(json.dumps(body).encode(), q)
    assert log == []
    assert all(not key.startswith("~") for key in service.windows if key != held)


def _sealed(keys: FileKeyStore, sender: str, event_id: str) -> tuple[bytes, list[Any]]:
    view = {"event_id": event_id, "occurred_at": "2026-10-01T10:00:00+00:00", "sender": "wmp",
            "type": "police.child_concern", "need_level": 2,
            "subjects": [{"role": "child", "nhs_number": NHS[0], "given_name": "Ava"}]}  # fmt: skip
    delivery = Delivery(
        event_id=event_id, recipient="sandwell-coord", outcome="shared", clauses=("c",),
        agreements=("a",), purpose="early_help", lawful_basis={"article6": "public_task"},
        policy_version="v", decided_at=datetime(2026, 10, 1, 10, tzinfo=UTC), view=view,
    )  # fmt: skip
    record = Sealer(sender, keys, EnvelopeSettings(kem=KemSuite.X25519)).seal(
        canonical_json(delivery.model_dump(mode="json")), event_id=event_id,
        recipient="sandwell-coord", schema=SCHEMA_SHARED, topic=deliver("sandwell-coord"),
    )  # fmt: skip
    return record.value, list(record.headers)


async def test_a_bad_delivery_record_is_skipped_with_its_reason_and_the_next_one_counts(
    tmp_path: Path,
) -> None:
    """Junk, or a record sealed by anyone but the worker, sends nothing on and stops nothing;
    the log gives the reason and no content."""
    keys = FileKeyStore(tmp_path / "keys", create=True)
    for party in ("worker", "sandwell-coord", "wmp"):
        keys.ensure_party(party, kem=KemSuite.X25519)
    service, log = _service(tmp_path, keys)
    forged = _sealed(keys, "wmp", "e0")
    with capture_logs() as logs:
        assert await service.on_delivery(b"not an envelope", []) == []
        assert await service.on_delivery(*forged) == []
        sent = await service.on_delivery(*_sealed(keys, "worker", "e1"))
    for acknowledged in sent:
        await acknowledged
    skipped = [e for e in logs if e["event"] == "flags_record_skipped"]
    assert len(skipped) == 2
    assert (service.counts.skipped, service.counts.processed) == (2, 1)  # on its /metrics
    assert skipped[1]["reason"] == "not-from-broker"
    assert [(step, body["record"]["event_id"]) for step, body in log if step == "send"] == [
        ("send", "e1")
    ]
    assert NHS[0] not in str(logs)
    assert "Ava" not in str(logs)


async def test_a_message_the_child_step_cannot_work_on_is_passed_over_loudly_and_the_next_counts(
    tmp_path: Path,
) -> None:
    """A bug (or another version's message) must not stop every child's flags: the message
    is passed over with an error naming where it is, and nothing from inside it."""
    service, _ = _service(tmp_path)
    real = service.engine.apply

    def apply(state: Any, place: Any, record: Any) -> Any:
        if record.event_id == "e2":
            raise RuntimeError(f"a bug that quotes its input: {NHS[1]}")
        return real(state, place, record)

    service.engine.apply = apply  # type: ignore[method-assign]
    with capture_logs() as logs:
        await service.on_child_record(_record("e1", NHS[0]), 0, 10)
        await service.on_child_record(_record("e2", NHS[1]), 0, 11)
        await service.on_child_record(b'{"child": ', 2, 12)
        await service.on_child_record(_record("e3", NHS[2]), 0, 13)
    failed = [e for e in logs if e["event"] == "flags_record_failed"]
    assert [(e["step"], e["partition"], e["offset"], e["error"]) for e in failed] == [
        ("child", 0, 11, "RuntimeError"),
        ("child", 2, 12, "JSONDecodeError"),
    ]
    assert all(e["log_level"] == "error" for e in failed)
    assert service.failed == 2
    assert service.counts.failed == {"child": 2, "household": 0}  # on its /metrics
    assert service.counts.raised == 2  # e1's and e3's need-level-4 flags
    assert NHS[1] not in str(logs)
    counted = {child_key(SECRET, {"nhs_number": nhs}) for nhs in (NHS[0], NHS[2])}
    assert set(_states_by_key(service.windows)) == counted  # e2's child: no state at all


async def test_a_message_the_household_step_cannot_work_on_is_passed_over_loudly(
    tmp_path: Path,
) -> None:
    service, log = _service(tmp_path)
    messages = await _household_messages(service, log)

    def broken(state: Any, message: Any) -> Any:
        raise KeyError(message.household)

    service.engine.apply_household = broken  # type: ignore[method-assign]
    with capture_logs() as logs:
        await service.on_household_record(json.dumps(messages[0]).encode(), 1, 7)
    assert [(e["event"], e["step"], e["offset"], e["error"]) for e in logs] == [
        ("flags_record_failed", "household", 7, "KeyError")
    ]
    assert household_key(SECRET, HOME) not in str(logs)
    assert _states_by_key(service.households) == {}


async def test_a_kafka_failure_still_stops_the_step_to_be_retried_after_a_restart(
    tmp_path: Path,
) -> None:
    """Only the work on a message is passed over: a flag Kafka would not take is not."""
    service, _ = _service(tmp_path)

    class Refusing(FakeTopic):
        async def send(self, **_: Any) -> Any:
            raise TransportError("sending a flag: the broker went away")

    service.out = Refusing([])
    with pytest.raises(TransportError):
        await service.on_child_record(_record("e1", NHS[0]), 0, 1)
    assert service.failed == 0
    assert _states_by_key(service.windows) == {}  # the record will come again


async def test_each_withdrawn_id_is_a_small_entry_of_its_own_in_the_notices_partition(
    tmp_path: Path,
) -> None:
    """No table record grows with the withdrawals: one list of every id, rewritten with each
    notice, would pass Kafka's 1 MB record limit after about 25,000 ids and stop the service."""
    service, log = _service(tmp_path)
    everyone = list(range(3))
    ids = [f"{i:08d}-0000-4000-8000-000000000000" for i in range(60)]
    for p in everyone:
        await service.on_child_record(json.dumps({"withdraw": ids[:30]}).encode(), p)
        await service.on_child_record(json.dumps({"withdraw": ids[20:]}).encode(), p)
    written = [key for step, key in log if step == "state"]
    assert len(written) == len(set(written)) == 3 * len(ids)  # each id once per partition
    for key in written:
        assert type(service.windows[key]) is int  # the time it was written
        assert len(key) < 64
    by_partition = {p: {k for k in written if partition_for(k.encode(), everyone) == p}
                    for p in everyone}  # fmt: skip
    assert all(len(keys) == len(ids) for keys in by_partition.values())
    log.clear()
    await service.on_child_record(json.dumps({"withdraw": ids[:5]}).encode(), 1)
    assert log == []  # known already: nothing written again


async def test_a_list_of_withdrawn_ids_written_by_an_earlier_version_still_counts(
    tmp_path: Path,
) -> None:
    service, log = _service(tmp_path)
    child = child_key(SECRET, {"nhs_number": NHS[0]})
    assert child is not None
    p = partition_for(child.encode(), list(range(3)))
    service.windows[service.withdrawn.list_key(p)] = ["e7"]  # the old layout, by hand
    log.clear()
    await service.on_child_record(_record("e7", NHS[0]), p)  # need level 4: would flag
    assert log == []
    await service.on_child_record(_record("e8", NHS[0]), p)
    assert [step for step, _ in log] == ["send", "acked", "state"]


async def test_an_opened_delivery_carries_its_occurred_at_for_the_arrival_order(
    tmp_path: Path,
) -> None:
    """The first step orders records written at one time by occurred_at: opening gives it
    (and nothing for a record it cannot open), before anything is sent on."""
    keys = FileKeyStore(tmp_path / "keys", create=True)
    for party in ("worker", "sandwell-coord"):
        keys.ensure_party(party, kem=KemSuite.X25519)
    service, log = _service(tmp_path, keys)
    opened = service.opened(*_sealed(keys, "worker", "e1"))
    assert opened.occurred == int(datetime(2026, 10, 1, 10, tzinfo=UTC).timestamp()) * 10**6
    assert log == []  # opened, not yet sent
    assert service.opened(b"not an envelope", []).occurred is None
    for acknowledged in await opened.send():
        await acknowledged
    assert [body["record"]["event_id"] for step, body in log if step == "send"] == ["e1"]
