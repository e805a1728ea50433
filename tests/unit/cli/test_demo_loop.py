"""The demo's scripted referral loop picks its parties from the bundle, and the synthetic
agencies leave referral and outcome types to it (the loop itself runs in test_install.py)."""

from __future__ import annotations

from pathlib import Path

from broker.cli._demo_loop import referral_parties
from broker.cli._demo_run import _routes
from broker.policy import load_bundle

POLICIES = Path(__file__).resolve().parents[3] / "policies"


def test_the_synthetic_agencies_never_send_referrals_or_outcomes() -> None:
    routes = _routes(load_bundle(POLICIES))
    assert "wmp" in routes
    assert "police.domestic_incident" in routes["wmp"]
    assert not [t for types in routes.values() for t in types if t.startswith("coordination.")]
    assert "cog-tipton" not in routes  # a hub publishes only outcomes: the loop's


def test_the_loop_refers_from_the_referring_team_to_a_district_of_a_reporting_hub() -> None:
    assert referral_parties(load_bundle(POLICIES)) == ("sandwell-coord", "DY4")
