"""The alert on a desk that cannot reach its database, run by promtool: five minutes of the
gauge at 1 alerts; a restart's few seconds do not."""

from __future__ import annotations

from pathlib import Path

from tests.unit.deploy.promtool_rules import fires
from tests.unit.deploy.test_observability import promtool

__all__ = ["promtool"]  # the fixture, shared with test_observability

_JOB = "accord-desk-school-146201"


def _away(values: str) -> list[dict[str, str]]:
    return [{"series": f'accord_desk_store_unavailable{{job="{_JOB}"}}', "values": values}]


def test_a_desk_away_from_its_database_for_five_minutes_alerts(
    promtool: str, tmp_path: Path
) -> None:
    fires(promtool, tmp_path, "AccordDeskStoreUnavailable", _away("0x30 1x10"), {_JOB: "1"},
          job=_JOB)  # fmt: skip


def test_a_database_back_within_minutes_does_not(promtool: str, tmp_path: Path) -> None:
    fires(promtool, tmp_path, "AccordDeskStoreUnavailable", _away("0x30 1x2 0x8"), {},
          job=_JOB)  # fmt: skip
