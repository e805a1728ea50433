"""What the flag service and the desk tell an operator as they start and run: SIGHUP ignored
with one line, the rules the service runs, the bundle version on its /metrics, and a second
service for the same team."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from broker.config import DeskSettings, KafkaSecurity, KafkaSettings
from broker.desk import flags_ops, log_flags_started, sighup_ignored
from broker.desk._flags_counts import FlagCounts
from broker.desk._flags_start import busy_groups
from broker.desk._serve import _signals
from broker.policy import Policy


@contextlib.contextmanager
def _sighup_left_as_it_was() -> Iterator[None]:
    before = signal.getsignal(signal.SIGHUP)
    try:
        yield
    finally:
        assert signal.getsignal(signal.SIGHUP) == before
        signal.signal(signal.SIGHUP, before)


def _hup_events(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"].endswith("_sighup_ignored")]


def test_sighup_outside_an_event_loop_is_logged_and_the_process_lives_on() -> None:
    with _sighup_left_as_it_was(), capture_logs() as logs:
        with sighup_ignored("flags_sighup_ignored", party="sandwell-coord"):
            os.kill(os.getpid(), signal.SIGHUP)  # the default action would end pytest
        assert _hup_events(logs) == [
            {"event": "flags_sighup_ignored", "party": "sandwell-coord",
             "hint": "restart to load a new bundle", "log_level": "warning"}
        ]  # fmt: skip


def test_sighup_inside_an_event_loop_is_logged_from_the_loop() -> None:
    async def main() -> None:
        with sighup_ignored("desk_sighup_ignored", party="sandwell-coord"):
            os.kill(os.getpid(), signal.SIGHUP)
            for _ in range(100):
                await asyncio.sleep(0.01)
                if _hup_events(logs):
                    break

    with _sighup_left_as_it_was(), capture_logs() as logs:
        asyncio.run(main())
    assert [e["event"] for e in _hup_events(logs)] == ["desk_sighup_ignored"]


def test_the_desk_ignores_sighup_while_it_serves_and_stops_on_sigterm_as_before() -> None:
    """run_desk's signals: SIGHUP logged (it used to end the desk), SIGTERM sets ``stop``."""

    async def main() -> asyncio.Event:
        stop = asyncio.Event()
        async with contextlib.AsyncExitStack() as stack:
            _signals(stack, stop, lambda: True, "sandwell-coord")
            os.kill(os.getpid(), signal.SIGHUP)
            await asyncio.sleep(0.05)
            assert not stop.is_set()
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(stop.wait(), 5)
        return stop

    with _sighup_left_as_it_was(), capture_logs() as logs:
        assert asyncio.run(main()).is_set()
    assert [e["event"] for e in _hup_events(logs)] == ["desk_sighup_ignored"]


def test_flags_started_names_each_rules_window_and_condition_and_no_one() -> None:
    rules = Policy.load(Path("policies")).flag_rules
    with capture_logs() as logs:
        log_flags_started("sandwell-coord", "sha256:abc", rules)
    (line,) = logs
    assert (line["event"], line["party"], line["version"]) == (
        "flags_started", "sandwell-coord", "sha256:abc"
    )  # fmt: skip
    by_id = {r["id"]: r for r in line["rules"]}
    assert by_id["multi-agency"]["window"] == "90d"
    assert by_id["multi-agency"]["when"] == "distinct_agencies >= 2 && contacts >= 3"
    assert by_id["household-domestic-abuse"]["household"] is True
    assert set(by_id) == {r.id for r in rules}


class _App:
    """What ``flags_ops`` asks of faust's app: its id, and tasks to run (never run here)."""

    conf = SimpleNamespace(id="accord.desk.sandwell-coord.flags")

    def __init__(self) -> None:
        self.tasks: list[Any] = []

    def task(self, fn: Any) -> Any:
        self.tasks.append(fn)
        return fn


def test_the_flag_services_metrics_say_which_bundle_version_it_runs() -> None:
    registry = CollectorRegistry()
    kafka = KafkaSettings(security_protocol=KafkaSecurity.PLAINTEXT)
    counts = FlagCounts()
    flags_ops(_App(), DeskSettings(), kafka, counts, version="sha256:abc", registry=registry)  # type: ignore[arg-type]
    assert registry.get_sample_value(
        "accord_desk_flags_policy_loaded", {"version": "sha256:abc"}
    ) == 1  # fmt: skip
    assert registry.get_sample_value("accord_desk_flags_raised_total") == 0


def test_busy_groups_are_those_kafka_says_have_members() -> None:
    """DescribeGroups' answer: (error, group, state, protocol type, protocol, members)."""
    member = ("m-1", "client", "/10.0.0.1", b"", b"")
    answer = SimpleNamespace(groups=[
        (0, "accord.desk.t.flags", "Stable", "consumer", "range", [member]),
        (0, "accord.desk.t.flags-open", "Empty", "consumer", "", []),
        (29, "accord.desk.t.other", "", "", "", [member]),  # refused: not counted
    ])  # fmt: skip
    assert busy_groups([answer]) == ["accord.desk.t.flags"]
    assert busy_groups([SimpleNamespace(groups=[])]) == []
