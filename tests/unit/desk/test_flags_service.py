"""The flag service's per-record steps (faust's topics and table replaced by fakes): a flag is
on the topic before the state records it, a flag already on the topic is never sent again,
and a withdrawal touches only its own partition's children."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from broker.config import KafkaSettings
from broker.desk import FlagServiceOptions, child_key
from broker.desk._flags_app import _Service
from broker.kafka import partition_for
from broker.keys import FileKeyStore
from broker.policy import load_bundle

REPO = Path(__file__).resolve().parents[3]
SECRET = b"s" * 32
NHS = ("9993080233", "9990025312", "9995754649", "9995335530", "9994863975", "9997032829")


class FakeTopic:
    def __init__(self, log: list[tuple[str, Any]]) -> None:
        self.log = log

    async def send(self, *, key: bytes | None, value: bytes, **_: Any) -> Any:
        self.log.append(("send", json.loads(value)))

        async def acked() -> None:
            self.log.append(("acked", key))

        return acked()


class FakeTable(dict[str, Any]):
    def __init__(self, log: list[tuple[str, Any]]) -> None:
        super().__init__()
        self.log = log

    def __setitem__(self, key: str, value: Any) -> None:
        self.log.append(("state", key))
        super().__setitem__(key, value)


def _service(tmp_path: Path) -> tuple[_Service, list[tuple[str, Any]]]:
    policy = load_bundle(REPO / "policies")
    opts = FlagServiceOptions(
        party="sandwell-coord",
        kafka=KafkaSettings(),
        keystore=FileKeyStore(tmp_path / "keys", create=True),
        rules=policy.flag_rules,
        linkage_secret=SECRET,
        datadir=tmp_path,
        partitions=3,
    )
    log: list[tuple[str, Any]] = []
    service = _Service(opts, FakeTopic(log), FakeTopic(log), FakeTable(log))
    service.published = set()  # as read from an empty flags topic at start
    return service, log


def _record(event_id: str, nhs: str, need: int = 4) -> bytes:
    child = child_key(SECRET, {"nhs_number": nhs})
    record = {"event_id": event_id, "occurred_at": "2026-10-01T10:00:00+00:00",
              "sender": "wmp", "type": "police.child_concern", "need_level": need,
              "categories": []}  # fmt: skip
    return json.dumps({"child": child, "record": record}).encode()


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
        assert changed == mine
    assert all(not state["recs"] for state in service.windows.values())
