"""How current the flags are, on the team's home page: a flag service that has not reported
for more than five minutes is a plain warning; one that has is "current" only when no record
waits for it, and otherwise says when the service last reported; a desk that cannot
reach Kafka says first, and alone, that nothing arrives since when. And the flag service's
counts, for its /metrics."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest

from broker.config import KafkaSettings
from broker.desk import DeskDeps
from broker.desk._flags_counts import FlagCounts
from broker.desk._flags_fresh import FlagsFreshness, Freshness
from broker.errors import TransportError
from broker.kafka import KafkaClients
from tests.unit.desk.conftest import Clock, sign_in

Make = Callable[..., tuple[TestClient, DeskDeps]]


class _Answers(FlagsFreshness):
    """The checker with Kafka's answers given (or refused) by the test."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(KafkaClients(KafkaSettings()), "sandwell-coord", clock)
        self.answer: tuple[dict, dict] | None = None  # type: ignore[type-arg]

    async def _ask(self):  # type: ignore[no-untyped-def]
        if self.answer is None:
            raise TransportError("Kafka away")
        return self.answer


def _tp(n: int) -> tuple[str, int]:
    return ("accord.deliver.sandwell-coord", n)


async def _home(make_client: Make, checker: FlagsFreshness) -> str:
    client, _ = make_client(flags_freshness=checker)
    sign_in(client)
    return client.get("/").text


async def test_a_flag_service_that_reported_a_minute_ago_is_current(
    make_client: Make, clock: Clock
) -> None:
    checker = _Answers(clock)
    at = (clock() - timedelta(minutes=1)).timestamp()
    checker.answer = ({_tp(0): (7, f'{{"at": {at}}}'), _tp(1): (3, None)}, {_tp(0): 8, _tp(1): 3})
    fresh = await checker.check()
    assert not fresh.stale
    assert fresh.behind == 0  # one past the commit on a partition: perhaps only a marker
    page = await _home(make_client, checker)
    current = page[page.index('id="flags-current"') :].split("</p>")[0]
    assert "Flags are current: the flag service last reported reading your records at" in current
    assert 'id="flags-stale"' not in page
    assert 'id="flags-behind"' not in page


async def test_records_waiting_for_a_recent_flag_service_are_never_called_current(
    make_client: Make, clock: Clock
) -> None:
    """The practitioners' case: the service frozen a minute ago, 22 records delivered since.
    Not yet five minutes, so no warning; but not "current" either."""
    checker = _Answers(clock)
    at = (clock() - timedelta(minutes=1)).timestamp()
    checker.answer = ({_tp(0): (7, f'{{"at": {at}}}'), _tp(1): (3, None)}, {_tp(0): 20, _tp(1): 12})
    fresh = await checker.check()
    assert not fresh.stale
    assert fresh.behind == 22
    page = await _home(make_client, checker)
    assert "current" not in page.split("<main", 1)[1].lower()
    assert 'id="flags-stale"' not in page
    behind = page[page.index('id="flags-behind"') :].split("</p>")[0]
    when = (clock() - timedelta(minutes=1)).strftime("%H:%M")  # London is UTC in November
    # When it reported (it reports after every batch, catching up or not), not when it was
    # last up to date: it may never have been since.
    assert f"Flag service last reported at 2026-11-23 {when} GMT;" in behind
    assert "up to date" not in behind
    assert "about 22 record(s) not yet checked." in behind


async def test_a_flag_service_silent_for_more_than_five_minutes_is_a_warning_with_its_backlog(
    make_client: Make, clock: Clock
) -> None:
    """The reviewer's case: the flag service stopped, records delivered since."""
    checker = _Answers(clock)
    at = (clock() - timedelta(minutes=6)).timestamp()
    checker.answer = ({_tp(0): (7, f'{{"at": {at}}}'), _tp(1): (3, None)}, {_tp(0): 12, _tp(1): 5})
    fresh = await checker.check()
    assert fresh.stale
    assert fresh.behind == 7
    page = await _home(make_client, checker)
    warning = page[page.index('id="flags-stale"') :].split("</p>")[0]
    assert "Flags may be out of date" in warning
    assert "more than 5 minutes ago" in warning
    assert "about 7 delivered record(s) are waiting" in warning


async def test_a_flag_service_that_never_reported_is_a_warning(
    make_client: Make, clock: Clock
) -> None:
    checker = _Answers(clock)
    checker.answer = ({}, {_tp(0): 4})
    assert (await checker.check()).stale
    page = await _home(make_client, checker)
    assert "The flag service has never reported reading your records" in page


def _lead(page: str) -> str:
    """The first paragraph after the page's heading: what the team reads first."""
    return page.split("</h1>", 1)[1].split("</p>", 1)[0]


@pytest.mark.parametrize("minutes", [1, 10])
async def test_kafka_out_of_reach_leads_the_page_and_blames_neither_flags_nor_records(
    make_client: Make, clock: Clock, minutes: int
) -> None:
    """The operators' case: Kafka away. Before it the service was current; one minute on
    (not yet stale) or ten (stale by the last answer), the page says first that nothing
    arrives, not "Flags are current", not to ask about the flag service, nor that records
    still arrive."""
    checker = _Answers(clock)
    at = clock().timestamp()
    checker.answer = ({_tp(0): (7, f'{{"at": {at}}}')}, {_tp(0): 7})
    await checker.check()
    last = clock().strftime("%H:%M")  # London is UTC in November
    checker.answer = None
    clock.advance(minutes=minutes)
    since = clock().strftime("%H:%M")
    fresh = await checker.check()
    assert fresh.reported_at is not None
    assert fresh.stale is (minutes > 5)  # as far as the desk knows
    clock.advance(minutes=1)
    await checker.check()  # still away: still since the first failed ask
    page = await _home(make_client, checker)
    lead = _lead(page)
    assert 'id="kafka-unreachable"' in lead
    assert 'role="alert"' in lead
    assert (
        f"The desk cannot reach Kafka since 2026-11-23 {since} GMT: no new records or flags "
        "are arriving."
    ) in lead
    assert f"the desk last heard from Kafka at 2026-11-23 {last} GMT" in lead
    main = page.split("<main", 1)[1]
    assert "Flags are current" not in main
    assert "Records still arrive" not in main
    assert "accord desk flags" not in main  # the flag service is not the cause
    assert 'id="flags-stale"' not in page
    assert 'id="flags-current"' not in page


async def test_a_desk_that_never_reached_kafka_says_so_first(
    make_client: Make, clock: Clock
) -> None:
    checker = _Answers(clock)
    await checker.check()  # refused from the start
    page = await _home(make_client, checker)
    lead = _lead(page)
    assert "The desk cannot reach Kafka since" in lead
    assert "last heard" not in lead
    assert 'id="flags-unknown"' not in page


async def test_kafka_back_ends_the_out_of_reach_banner(make_client: Make, clock: Clock) -> None:
    checker = _Answers(clock)
    await checker.check()
    at = clock().timestamp()
    checker.answer = ({_tp(0): (7, f'{{"at": {at}}}')}, {_tp(0): 7})
    await checker.check()
    page = await _home(make_client, checker)
    assert 'id="kafka-unreachable"' not in page
    assert 'id="flags-current"' in _lead(page)


async def test_a_desk_that_has_not_asked_yet_says_it_does_not_know(
    make_client: Make, clock: Clock
) -> None:
    page = await _home(make_client, _Answers(clock))
    assert 'id="flags-unknown"' in page


def test_the_flag_services_counts_are_on_its_metrics_without_personal_labels() -> None:
    counts = FlagCounts()
    counts.processed, counts.skipped, counts.raised = 5, 2, 1
    counts.failed["child"] = 3
    counts.progress = 1_800_000_000.0
    registry = CollectorRegistry()
    registry.register(counts)
    text = generate_latest(registry).decode()
    assert 'accord_desk_flags_deliveries_total{outcome="processed"} 5.0' in text
    assert 'accord_desk_flags_deliveries_total{outcome="skipped"} 2.0' in text
    assert 'accord_desk_flags_failed_total{step="child"} 3.0' in text
    assert "accord_desk_flags_raised_total 1.0" in text
    assert "accord_desk_flags_progress_timestamp_seconds 1.8e+09" in text


def test_freshness_is_judged_at_the_time_of_asking(clock: Clock) -> None:
    checker = _Answers(clock)
    fresh = Freshness(clock(), clock() - timedelta(minutes=4), 0, 3)
    assert not checker.judged(fresh).stale
    clock.advance(minutes=2)
    assert checker.judged(fresh).stale
    assert isinstance(fresh.checked_at, datetime)
