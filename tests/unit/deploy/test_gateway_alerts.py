"""The gateways' wrong-token alerts, run by promtool over made-up series: the 401s alone
alert, not only the 429s that follow them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from broker.deploy._observability import alert_rules_text
from tests.unit.deploy.test_observability import promtool

__all__ = ["promtool"]  # the fixture, shared with test_observability

_JOB = "accord-gateway-wmp"


def _series(outcome: str, values: str) -> dict[str, str]:
    labels = f'job="{_JOB}",endpoint="event",outcome="{outcome}"'
    return {"series": f"accord_gateway_requests_total{{{labels}}}", "values": values}


def _check_alert(promtool: str, tmp_path: Path, per_minute: float, *, fires: bool) -> None:
    """That AccordGatewayUnauthorised fires (or not) at 20 minutes of ``per_minute`` 401s,
    and no 429 (the guesser keeps under the limits)."""
    text = alert_rules_text()
    (tmp_path / "alerts.yml").write_text(text)
    [rule] = [r for g in yaml.safe_load(text)["groups"] for r in g["rules"]
              if r["alert"] == "AccordGatewayUnauthorised"]  # fmt: skip
    # promtool compares the annotations too: the rule's, filled in as Prometheus would.
    value = f"{per_minute * 10:g}"
    filled = {k: v.replace("{{ $labels.job }}", _JOB).replace("{{ $value }}", value)
              for k, v in rule["annotations"].items()}  # fmt: skip
    alert = {"exp_labels": {"severity": "warning", "job": _JOB}, "exp_annotations": filled}
    test = {
        "interval": "1m",
        "input_series": [_series("unauthorised", f"0+{per_minute}x30")],
        "alert_rule_test": [{"eval_time": "20m", "alertname": "AccordGatewayUnauthorised",
                             "exp_alerts": [alert] if fires else []}],
    }  # fmt: skip
    spec = {"rule_files": ["alerts.yml"], "evaluation_interval": "1m", "tests": [test]}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(spec))
    done = subprocess.run(  # Prometheus' own rule tester, on files this test wrote
        [promtool, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_wrong_tokens_under_the_429_limits_alert(promtool: str, tmp_path: Path) -> None:
    """Two a minute, from addresses each under its own limit: no 429, yet an alert."""
    _check_alert(promtool, tmp_path, 2, fires=True)


def test_a_stray_wrong_token_now_and_then_does_not(promtool: str, tmp_path: Path) -> None:
    _check_alert(promtool, tmp_path, 0.5, fires=False)
