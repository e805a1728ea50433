"""The alert on shares refused for want of the recipient's key, run by promtool over made-up
series: the first refusal to a party alerts, naming it (its series stands at 0 from the
bundle's loading), as does a new worker's series that begins above 0 (its refusals made
before Prometheus first scraped it); a party sent to, or one refused long ago, does not."""

from __future__ import annotations

from pathlib import Path

from tests.unit.deploy.promtool_rules import fires
from tests.unit.deploy.test_observability import promtool

__all__ = ["promtool"]  # the fixture, shared with test_observability

_JOB = "accord-worker"
_ALERT = "AccordRecipientKeyUnavailable"
_NO_KEY, _KEYED = "school-146202", "school-146201"


def _refused(recipient: str, values: str) -> dict[str, str]:
    labels = f'job="{_JOB}",recipient="{recipient}"'
    return {"series": f"accord_recipient_key_unavailable_total{{{labels}}}", "values": values}


def _fires(promtool: str, tmp_path: Path, series: list[dict[str, str]],
           firing: dict[str, str]) -> None:  # fmt: skip
    """That the alert fires at 40 minutes of ``series`` for exactly the recipients in
    ``firing`` (recipient -> its value)."""
    fires(promtool, tmp_path, _ALERT, series, firing, job=_JOB, label="recipient")


def test_the_first_refusal_for_want_of_a_key_alerts_naming_the_recipient(
    promtool: str, tmp_path: Path
) -> None:
    """One share refused at minute 35, after 35 minutes at 0; the other party has its key."""
    series = [_refused(_NO_KEY, "0x35 1x5"), _refused(_KEYED, "0x40")]
    _fires(promtool, tmp_path, series, {_NO_KEY: "1"})


def test_refusals_that_stopped_do_not_alert(promtool: str, tmp_path: Path) -> None:
    """Its keys were put in the directory 20 minutes ago: the count stands still."""
    series = [_refused(_NO_KEY, "0x10 1+1x10 11x20")]
    _fires(promtool, tmp_path, series, {})


def test_a_refusal_before_the_first_scrape_of_a_new_worker_alerts(
    promtool: str, tmp_path: Path
) -> None:
    """A new pod is a new series: it worked through its backlog before Prometheus first
    scraped it, so its series begins at 1, and increase() over it shows nothing."""
    series = [_refused(_NO_KEY, "_x30 1x10"), _refused(_KEYED, "_x30 0x10")]
    _fires(promtool, tmp_path, series, {_NO_KEY: "1"})


def test_a_series_missing_for_a_while_is_not_taken_for_a_new_one(
    promtool: str, tmp_path: Path
) -> None:
    """Scrapes missed around 15 minutes ago (Prometheus or the network away): the count from
    long ago, unchanged since, is not a refusal now."""
    series = [_refused(_NO_KEY, "5x15 _x14 5x10")]
    _fires(promtool, tmp_path, series, {})


def test_an_old_count_after_an_hour_and_more_without_scrapes_does_not_alert(
    promtool: str, tmp_path: Path
) -> None:
    """Prometheus down 80 minutes (maintenance): the count it finds again is not new (s44d)."""
    series = [_refused(_NO_KEY, "5x15 _x80 5x10")]
    fires(promtool, tmp_path, _ALERT, series, {}, job=_JOB, label="recipient", at="105m")
