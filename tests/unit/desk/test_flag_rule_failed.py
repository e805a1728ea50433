"""A flag rule whose condition fails on a child's window at runtime does not fire there, and
is never silent: the engine tells whoever runs it (rule id, error type), and the flag service
logs ``flags_rule_failed`` and counts it on its /metrics, by rule, without the window's values."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from structlog.testing import capture_logs

from broker.config import KafkaSettings
from broker.desk import ChildState, FlagEngine, FlagServiceOptions, child_key
from broker.desk._flags_app import _Service
from broker.keys import FileKeyStore
from broker.policy import CompiledFlagRule, FlagRule
from broker.policy._flags import compile_flag_rule
from tests.unit.desk.test_flags_service import FakeTable, FakeTopic

SECRET = b"s" * 32
NHS = "9993080233"
T0 = datetime(2026, 11, 1, 10, tzinfo=UTC)
HOME = {"address": "27 Chapman Close, Tipton", "postcode": "DY4 8RT"}
# Each loads (no load-time sample is a lone need-4 record without a category), and fails on
# exactly that window: categories[0] of no category.
CHILD = "max_need == 4 && contacts == 1 && categories[0] != 'x'"
HOUSEHOLD = "household.max_need == 4 && household.contacts == 1 && household.categories[0] != 'x'"


def _rule(rule_id: str, when: str) -> CompiledFlagRule:
    done, problems = compile_flag_rule(FlagRule(id=rule_id, title=rule_id, window="30d",
                                                when=when))  # fmt: skip
    assert done is not None, problems
    return done


def _rules() -> tuple[CompiledFlagRule, ...]:
    return (_rule("lone-four", CHILD), _rule("need-four", "max_need >= 4"),
            _rule("house-four", HOUSEHOLD))  # fmt: skip


def _view(event_id: str, day: int, cats: list[str]) -> dict[str, Any]:
    return {"event_id": event_id, "type": "police.child_concern", "sender": "wmp",
            "occurred_at": (T0 + timedelta(days=day)).isoformat(), "need_level": 4,
            "categories": cats,
            "subjects": [{"role": "child", "nhs_number": NHS, **HOME}]}  # fmt: skip


def test_the_engine_tells_of_each_failing_rule_child_and_household_and_others_still_fire() -> None:
    told: list[tuple[str, str]] = []
    engine = FlagEngine(_rules(), "sandwell-coord", SECRET,
                        rule_failed=lambda *t: told.append(t))  # fmt: skip
    states: dict[str, ChildState] = {}
    raised = engine.process(_view("e1", 0, []), states)
    assert [f.rule for f in raised] == ["need-four"]
    assert told == [("lone-four", "IndexError"), ("house-four", "IndexError")]
    told.clear()
    # Where it can be evaluated, the same rule fires.
    raised = engine.process({**_view("e2", 60, ["neglect"]), "subjects": [
        {"role": "child", "nhs_number": "9990109281", **HOME}]}, states)  # fmt: skip
    assert {f.rule for f in raised} == {"lone-four", "need-four", "house-four"}
    assert told == []


def _service(tmp_path: Path) -> tuple[_Service, FlagServiceOptions, list[tuple[str, Any]]]:
    opts = FlagServiceOptions(
        party="sandwell-coord",
        kafka=KafkaSettings(),
        keystore=FileKeyStore(tmp_path / "keys", create=True),
        rules=_rules(),
        linkage_secret=SECRET,
        datadir=tmp_path,
        partitions=3,
    )
    log: list[tuple[str, Any]] = []
    topics = (FakeTopic(log), FakeTopic(log, "-household"), FakeTopic(log))
    service = _Service(opts, topics, (FakeTable(log), FakeTable(log, "-household")))
    service.published = set()
    return service, opts, log


def _metrics(opts: FlagServiceOptions) -> str:
    registry = CollectorRegistry()
    registry.register(opts.counts)
    return generate_latest(registry).decode()


async def test_the_flag_service_logs_and_counts_a_rules_runtime_failure_by_rule(
    tmp_path: Path,
) -> None:
    service, opts, log = _service(tmp_path)
    before = _metrics(opts)
    # Every rule has its series from the start, so an alert sees the first failure.
    for rule in ("lone-four", "need-four", "house-four"):
        assert f'accord_desk_flags_rule_failed_total{{rule="{rule}"}} 0.0' in before
    child = child_key(SECRET, {"nhs_number": NHS})
    record = {"event_id": "e1", "occurred_at": T0.isoformat(), "sender": "wmp",
              "type": "police.child_concern", "need_level": 4, "categories": []}  # fmt: skip
    message = {"child": child, "household": None, "residents": [child], "record": record}
    with capture_logs() as logs:
        await service.on_child_record(json.dumps(message).encode(), 0)
    assert [body["rule"] for step, body in log if step == "send"] == ["need-four"]
    failed = [entry for entry in logs if entry["event"] == "flags_rule_failed"]
    assert failed == [
        {"event": "flags_rule_failed", "party": "sandwell-coord", "rule": "lone-four",
         "error": "IndexError", "log_level": "error"},
    ]  # fmt: skip
    after = _metrics(opts)
    assert 'accord_desk_flags_rule_failed_total{rule="lone-four"} 1.0' in after
    assert 'accord_desk_flags_rule_failed_total{rule="need-four"} 0.0' in after
    assert child not in after
    assert "e1" not in json.dumps(failed)
