"""Running an alert of ``alerts.yml`` through promtool (Prometheus' own rule tester) over
made-up series, for the alert tests of each part (worker lag, gateways, recipient keys)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from broker.deploy._observability import alert_rules_text


def fires(
    promtool: str, tmp_path: Path, name: str, series: list[dict[str, str]],
    firing: dict[str, str], *, job: str, label: str = "job", at: str = "40m",
) -> None:  # fmt: skip
    """That alert ``name`` fires at ``at`` of ``series`` for exactly the values of ``label``
    in ``firing`` (each to the alert's ``$value``), on ``job``; none for an empty ``firing``."""
    text = alert_rules_text()
    (tmp_path / "alerts.yml").write_text(text)
    [rule] = [r for g in yaml.safe_load(text)["groups"] for r in g["rules"]
              if r["alert"] == name]  # fmt: skip
    alerts = []
    for key, value in firing.items():
        # promtool compares the annotations too: the rule's, filled in as Prometheus would.
        filled = {
            k: v.replace(f"{{{{ $labels.{label} }}}}", key)
            .replace("{{ $labels.job }}", job)
            .replace("{{ $value }}", value)
            for k, v in rule["annotations"].items()
        }
        labels = {**rule["labels"], "job": job, label: key}
        alerts.append({"exp_labels": labels, "exp_annotations": filled})
    test = {
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [{"eval_time": at, "alertname": name, "exp_alerts": alerts}],
    }
    spec = {"rule_files": ["alerts.yml"], "evaluation_interval": "1m", "tests": [test]}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(spec))
    done = subprocess.run(  # Prometheus' own rule tester, on files this test wrote
        [promtool, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
