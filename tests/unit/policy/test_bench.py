"""The policy benchmark runs on the project's bundle and measures both rates in one run (its
figures are reported by ``make bench``, never asserted: a timed assertion fails on a busy
machine, not on slow code)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
BENCH = REPO / "benchmarks" / "bench_policy.py"


def test_bench_policy_reports_both_rates_and_their_ratio() -> None:
    spec = importlib.util.spec_from_file_location("bench_policy", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.PROJECT_POLICIES == REPO / "policies"  # the project's bundle, not ../shared
    result = module.run(seconds=0.3)
    # Seven candidates, five of which receive the event (run() checks who, and each outcome).
    assert (result["candidates"], result["shared"]) == (7, 5)
    assert result["decide_per_s"] > 0
    assert result["validate_per_s"] > 0
    assert result["decide_cost_ratio"] == pytest.approx(
        result["validate_per_s"] / result["decide_per_s"], rel=0.01
    )
