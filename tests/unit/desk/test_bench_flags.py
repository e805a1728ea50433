"""The flag benchmark runs on the project's bundle and reports both rates and their ratio
(reported by ``make bench``, never asserted as a time)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
BENCH = REPO / "benchmarks" / "bench_flags.py"


def test_bench_flags_reports_both_rates_and_their_ratio() -> None:
    spec = importlib.util.spec_from_file_location("bench_flags", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.run(seconds=0.2)
    assert result["flags_in_history"] > 0  # the busy windows do raise flags
    assert result["flag_engine_per_s"] > 0
    assert result["flag_cost_ratio"] == pytest.approx(
        result["parse_delivery_per_s"] / result["flag_engine_per_s"], rel=0.01
    )
