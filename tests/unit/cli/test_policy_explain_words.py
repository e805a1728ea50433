"""``accord policy explain`` counts a decision's subjects by role in words that agree with
the count (walkthrough: "3 (2 child, 1 parent)")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from broker.cli import main

REPO = Path(__file__).resolve().parents[3]
TIPTON = "Tipton incident - each school is told about its own pupil only"


def test_subjects_by_role_are_counted_in_plurals_that_agree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenarios = yaml.safe_load((REPO / "policies/scenarios/police-and-encompass.yaml").read_text())
    scenario = next(s for s in scenarios if s["name"] == TIPTON)
    event = tmp_path / "event.json"
    event.write_text(json.dumps(scenario["event"], default=str))
    at = scenario["at"].isoformat()
    main(["policy", "explain", str(event), "--policies", str(REPO / "policies"), "--at", at])
    out = capsys.readouterr().out
    assert "4 (2 children, 1 parent, 1 other adult)" in out
    assert "1 (1 child)" in out
    assert "child," not in out
