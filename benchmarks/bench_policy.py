"""Benchmark: ``decide`` for an event with seven candidate recipients vs validating that event.

Both are measured in the same run on the same machine, so the ratio is what matters (target:
decide ≤ 10x pydantic validation). The event is a police domestic incident with two children
at different schools in different hub localities (Tipton and Oldbury), decided on the
project's West Midlands bundle (``policies/``): five recipients receive it (the Sandwell
co-ordinating team, both schools under Operation Encompass, and both towns' Community
Operating Groups, with consent given), and two more are decided but not sent (Safe Haven,
whose agreement is suspended, and the Wolverhampton MASH, whose condition does not hold).

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
PROJECT_POLICIES = REPO / "policies"
AT = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
# Who decide() must name for the event, and who of them receives it.
CANDIDATES = {
    "sandwell-coord": "shared",
    "school-146201": "shared",
    "school-146202": "shared",
    "cog-tipton": "shared",
    "cog-oldbury": "shared",
    "safe-haven": "not_shared",
    "wolverhampton-mash": "not_shared",
}


def _event() -> dict[str, Any]:
    from broker.synthetic import SyntheticFamilies  # after sys.path setup

    fam = SyntheticFamilies(seed=7)
    # Tipton Lock Primary in cog-tipton's DY4; Oldbury Brook Academy in cog-oldbury's B69.
    subjects = [
        fam.subject("child", family_name="Hollis", postcode="DY4 7AA", age=7, school_urn="146201"),
        fam.subject("child", family_name="Hollis", postcode="B69 4RJ", age=12, school_urn="146202"),
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


def run(seconds: float = 2.0, policies: Path = PROJECT_POLICIES) -> dict[str, Any]:
    """Measure both rates in one run; returns the rates (per second) and the ratio."""
    from broker.events import parse_consents, parse_event
    from broker.policy import Policy

    if not policies.is_dir():
        raise SystemExit(f"policy bundle not found at {policies}")
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
    got = {d.recipient: d.outcome for d in decisions}
    if got != CANDIDATES:
        raise SystemExit(f"expected the candidates {CANDIDATES}, got {got}")
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
