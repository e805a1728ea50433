"""The audit indexer's stuck-lag alert, run by promtool over made-up series: a lag that only
grows for 5 minutes (reads held at a transaction left open on accord.audit, or an indexer
stuck) alerts; one draining, one that comes and goes with a busy topic, a caught-up indexer,
and a lag that stands still while nothing new is written, do not."""

from __future__ import annotations

from pathlib import Path

from tests.unit.deploy.promtool_rules import fires
from tests.unit.deploy.test_observability import promtool

__all__ = ["promtool"]  # the fixture, shared with test_observability

_JOB = "accord-indexer"
_STUCK = "AccordAuditIndexLagStuck"
#: What the gauge reads each minute for 40 minutes.
_FLUCTUATING = " ".join(["3 7 2 9 4 8 1 6 5"] * 5)  # a busy topic, indexed as it comes


def _lag(values: str) -> list[dict[str, str]]:
    return [{"series": f'accord_audit_index_lag{{job="{_JOB}"}}', "values": values}]


def _fires(promtool: str, tmp_path: Path, series: list[dict[str, str]], value: str | None) -> None:
    fires(promtool, tmp_path, _STUCK, series, {} if value is None else {_JOB: value}, job=_JOB)


def test_reads_held_while_the_topic_grows_alert(promtool: str, tmp_path: Path) -> None:
    """Caught up, then held at 50 from 21 minutes, then growing: others keep writing."""
    _fires(promtool, tmp_path, _lag("0x20 50x15 60 70 80 90"), "50")


def test_a_draining_backlog_does_not_alert(promtool: str, tmp_path: Path) -> None:
    _fires(promtool, tmp_path, _lag("800-10x40"), None)


def test_a_busy_topic_indexed_as_it_comes_does_not_alert(promtool: str, tmp_path: Path) -> None:
    _fires(promtool, tmp_path, _lag(_FLUCTUATING), None)


def test_a_caught_up_indexer_does_not_alert(promtool: str, tmp_path: Path) -> None:
    _fires(promtool, tmp_path, _lag("0x40"), None)


def test_a_lag_standing_still_while_nothing_is_written_does_not_alert(
    promtool: str, tmp_path: Path
) -> None:
    """Only the open transaction's own records wait: nobody else's record is held back."""
    _fires(promtool, tmp_path, _lag("0x20 5x20"), None)
