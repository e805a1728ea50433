"""The public surface of broker.policy is pinned: changing it is a deliberate act."""

from __future__ import annotations

import broker.policy


def test_public_names() -> None:
    assert sorted(broker.policy.__all__) == sorted([
        "ARTICLE6_BASES", "PARTY_KINDS", "REASON_PRECEDENCE", "SELECTORS", "SPECIAL_BASES",
        "TRANSFORMS", "Agreement", "Bundle", "Clause", "ClauseRef", "Decision", "LawfulBasis",
        "Outcome", "Party", "Policy", "Reason", "Restriction", "Scenario", "ScenarioResult",
        "SubjectScope", "load_bundle", "load_scenarios", "redact", "run_scenario",
    ])  # fmt: skip
    for name in broker.policy.__all__:
        assert hasattr(broker.policy, name)
