"""The flag services' alerts: rendered per co-ordinating team whose flag service a render runs,
valid to promtool, selecting the job its scrape gives it and metrics the service exports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from broker.deploy import Target, deployment, render_files
from broker.deploy._flag_alerts import FLAGS_GROUP
from broker.deploy._observability import (
    alert_rules_text,
    exported_metric_names,
    promql_metric_names,
    shipped_expressions,
)
from broker.desk._flags_counts import FlagCounts
from broker.policy import load_bundle
from tests.unit.deploy.test_observability import _check, promtool

__all__ = ["promtool"]  # the fixture, shared with test_observability

POLICIES = Path("policies")
_NAMES = {
    "AccordFlagsNotReading",
    "AccordFlagsRecordFailed",
    "AccordFlagsRuleFailed",
    "AccordFlagsAbsent",
}


def _flag_rules(text: str) -> list[dict[str, Any]]:
    groups = yaml.safe_load(text)["groups"]
    return [r for g in groups if g["name"] == FLAGS_GROUP for r in g["rules"]]


def _rendered(desks: tuple[str, ...], tmp_path: Path) -> dict[str, str]:
    dep = deployment(load_bundle(POLICIES), POLICIES, brokers=1, partitions=1, image="a:1",
                     desks=desks)  # fmt: skip
    return render_files(dep, Target.COMPOSE, tmp_path / "out")[0]


def test_a_render_with_a_teams_flag_service_alerts_on_it_by_its_scrape_job(
    tmp_path: Path,
) -> None:
    """The operator's render had no rule naming accord-flags-<party> at all."""
    files = _rendered(("sandwell-coord", "cog-tipton"), tmp_path)
    text = files["prometheus/alerts.yml"]
    rules = _flag_rules(text)
    assert {r["alert"] for r in rules} == _NAMES
    prometheus = yaml.safe_load(files["prometheus/prometheus.yml"])
    jobs = {s["job_name"] for s in prometheus["scrape_configs"]}
    assert "accord-flags-sandwell-coord" in jobs
    for rule in rules:
        assert 'job="accord-flags-sandwell-coord"' in rule["expr"], rule["alert"]
        assert rule["labels"] == {"severity": "warning", "party": "sandwell-coord"}
    # A hub has no flag service: nothing names one for it.
    assert "accord-flags-cog-tipton" not in text
    by_name = {r["alert"]: r["expr"] for r in rules}
    assert "> 300" in by_name["AccordFlagsNotReading"]
    assert "absent(accord_desk_flags_progress_timestamp_seconds" in by_name["AccordFlagsNotReading"]
    assert "increase(accord_desk_flags_failed_total" in by_name["AccordFlagsRecordFailed"]
    assert "increase(accord_desk_flags_rule_failed_total" in by_name["AccordFlagsRuleFailed"]
    assert by_name["AccordFlagsAbsent"].strip() == 'absent(up{job="accord-flags-sandwell-coord"})'


def test_a_render_without_a_flag_service_ships_the_rules_as_they_are(tmp_path: Path) -> None:
    assert _rendered(("cog-tipton",), tmp_path)["prometheus/alerts.yml"] == alert_rules_text()
    assert not _flag_rules(alert_rules_text())


def test_two_teams_rules_pass_promtool(promtool: str, tmp_path: Path) -> None:
    """Same names, told apart by their party label: promtool refuses duplicate rules."""
    text = alert_rules_text(["sandwell-coord", "dudley-coord"])
    path = tmp_path / "alerts.yml"
    path.write_text(text)
    total = sum(len(g["rules"]) for g in yaml.safe_load(text)["groups"])
    assert f"SUCCESS: {total} rules found" in _check(promtool, "rules", str(path))
    assert len(_flag_rules(text)) == 2 * len(_NAMES)


def test_every_metric_the_flag_rules_query_is_one_the_flag_service_exports() -> None:
    """Its counts (the progress gauge once it has committed) and Prometheus' own ``up``."""
    registry = CollectorRegistry()
    counts = FlagCounts()
    counts.progress = 1.0
    registry.register(counts)
    exported = exported_metric_names(generate_latest(registry).decode())
    flag_rules = {k: v for k, v in shipped_expressions(["sandwell-coord"]).items()
                  if k.removeprefix("alert ").split()[0] in _NAMES}  # fmt: skip
    assert len(flag_rules) == len(_NAMES)
    for where, expr in flag_rules.items():
        missing = promql_metric_names(expr) - exported - {"up"}
        assert not missing, f"{where} queries {sorted(missing)}, which nothing exports"


@pytest.mark.parametrize("parties", [["a-coord"], ["a-coord", "b-coord"]])
def test_each_teams_rules_are_listed_once_in_shipped_expressions(parties: list[str]) -> None:
    names = [k for k in shipped_expressions(parties) if "AccordFlags" in k]
    assert len(names) == len(set(names)) == len(_NAMES) * len(parties)


def test_the_deployment_guide_lists_the_flag_services_alerts() -> None:
    text = Path("docs/deployment.md").read_text(encoding="utf-8")
    for name in _NAMES:
        assert name in text, name
