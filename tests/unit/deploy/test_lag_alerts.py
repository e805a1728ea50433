"""The worker's lag alerts, run by promtool over made-up series: a topic whose lag does not
fall alerts though other topics commit (job-wide, AccordWorkerNotConsuming never fires
then); one draining, or whose lag comes and goes with the records in flight, does not."""

from __future__ import annotations

from pathlib import Path

from tests.unit.deploy.promtool_rules import fires
from tests.unit.deploy.test_observability import promtool

__all__ = ["promtool"]  # the fixture, shared with test_observability

_JOB = "accord-worker"
_STUCK = "AccordConsumerLagStuck"
_WEDGED, _BUSY = "accord.ingress.wmp", "accord.ingress.nhs"
#: What the gauge reads each minute for 40 minutes, by topic.
_FLUCTUATING = " ".join(["3 7 2 9 4 8 1 6 5"] * 5)  # records in flight, come and gone


def _lag(topic: str, values: str) -> dict[str, str]:
    return {"series": f'accord_consumer_lag{{job="{_JOB}",topic="{topic}"}}', "values": values}


def _committing(values: str = "0+50x40") -> dict[str, str]:
    labels = f'job="{_JOB}",result="committed"'
    return {"series": f"accord_transactions_total{{{labels}}}", "values": values}


def _fires(promtool: str, tmp_path: Path, name: str, series: list[dict[str, str]],
           firing: dict[str, str]) -> None:  # fmt: skip
    """That alert ``name`` fires at 40 minutes of ``series`` for exactly the topics in
    ``firing`` (topic -> its value)."""
    fires(promtool, tmp_path, name, series, firing, job=_JOB, label="topic")


def test_a_wedged_topic_alerts_while_another_commits(promtool: str, tmp_path: Path) -> None:
    series = [_lag(_WEDGED, "40x40"), _lag(_BUSY, _FLUCTUATING), _committing()]
    _fires(promtool, tmp_path, _STUCK, series, {_WEDGED: "40"})
    _fires(promtool, tmp_path, "AccordWorkerNotConsuming", series, {})  # job-wide: commits


def test_a_paused_topic_whose_backlog_grows_alerts(promtool: str, tmp_path: Path) -> None:
    """A sender over its budget for 40 minutes: its partitions paused, its records piling."""
    series = [_lag(_WEDGED, "100+10x40"), _committing()]
    _fires(promtool, tmp_path, _STUCK, series, {_WEDGED: "350"})


def test_a_draining_backlog_does_not_alert(promtool: str, tmp_path: Path) -> None:
    series = [_lag(_WEDGED, "8000-100x40"), _committing()]
    _fires(promtool, tmp_path, _STUCK, series, {})


def test_records_in_flight_on_a_busy_topic_do_not_alert(promtool: str, tmp_path: Path) -> None:
    """The gauge counts the records fetched and not yet committed: never 0 on a busy topic."""
    series = [_lag(_BUSY, _FLUCTUATING), _committing()]
    _fires(promtool, tmp_path, _STUCK, series, {})


def test_a_topic_that_caught_up_does_not_alert(promtool: str, tmp_path: Path) -> None:
    series = [_lag(_WEDGED, "0x40"), _committing()]
    _fires(promtool, tmp_path, _STUCK, series, {})
