"""Benchmark: ``decide`` for an event with five candidate recipients vs validating that event.

Both are measured in the same run on the same machine, so the ratio is what matters (target:
decide ≤ 10x pydantic validation). The event is a police domestic incident with two children
at different schools in different hub localities, so the example bundle routes it to the
co-ordinating team, two schools (Operation Encompass) and two hubs (with consent given).

    python benchmarks/bench_policy.py
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_POLICIES = REPO.parent / "shared" / "examples" / "policies"
AT = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def _event() -> dict[str, Any]:
    from broker.synthetic import SyntheticFamilies  # after sys.path setup

    fam = SyntheticFamilies(seed=7)
    subjects = [
        fam.subject("child", family_name="Hollis", postcode="DY4 7AA", age=7, school_urn="100001"),
        fam.subject(
            "child", family_name="Hollis", postcode="WS10 7DE", age=12, school_urn="100002"
        ),
        fam.subject("parent", family_name="Hollis", postcode="DY4 7AA", age=35),
    ]
    return fam.event(
        "police.domestic_incident",
        "wmp",
        subjects=subjects,
        need_level=3,
        occurred_at=datetime(2026, 11, 21, 22, 40, tzinfo=UTC),
    )


def _rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second, best of five rounds (robust to a noisy neighbour)."""
    n = 1
    while True:  # calibrate to ~seconds/5 per round
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        took = time.perf_counter() - t0
        if took > seconds / 50:
            break
        n *= 2
    per_round = max(1, int(n * (seconds / 5) / took))
    best = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(per_round):
            fn()
        best = max(best, per_round / (time.perf_counter() - t0))
    return best


def run(seconds: float = 2.0, policies: Path = EXAMPLE_POLICIES) -> dict[str, Any]:
    """Measure both rates in one run; returns the rates (per second) and the ratio."""
    from broker.events import parse_consents, parse_event
    from broker.policy import Policy

    if not policies.is_dir():
        raise SystemExit(
            f"example bundle not found at {policies} (needs ../shared beside the repo)"
        )
    policy = Policy.load(policies)
    raw = _event()
    payload = json.dumps(raw).encode()
    event = parse_event(payload, now=AT)
    nhs = [s["nhs_number"] for s in raw["subjects"] if s["role"] == "child"]
    consents = parse_consents(
        [
            {
                "subject": {"nhs_number": n},
                "state": "given",
                "purposes": ["early_help"],
                "recipients": ["kind:hub"],
                "recorded_by": "sandwell-coord",
                "recorded_at": "2026-10-01T09:00:00Z",
            }
            for n in nhs
        ],
        now=AT,
    )
    decisions = policy.decide(event, consents, at=AT)
    if len(decisions) != 5:
        raise SystemExit(f"expected five candidate recipients, got {len(decisions)}")
    validate_rate = _rate(lambda: parse_event(payload, now=AT), seconds)
    decide_rate = _rate(lambda: policy.decide(event, consents, at=AT), seconds)
    return {
        "candidates": len(decisions),
        "shared": sum(d.shares for d in decisions),
        "validate_per_s": round(validate_rate),
        "decide_per_s": round(decide_rate),
        "validate_us": round(1e6 / validate_rate, 2),
        "decide_us": round(1e6 / decide_rate, 2),
        "decide_cost_ratio": round(validate_rate / decide_rate, 2),
        "target_ratio": 10.0,
    }


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    result = run()
    print(json.dumps(result, indent=2))
    print(
        f"decide: {result['decide_us']} µs for {result['candidates']} candidates; "
        f"validate: {result['validate_us']} µs; ratio {result['decide_cost_ratio']}x (target ≤ 10x)"
    )
