"""The demo's scripted referral loop picks its parties from the bundle, and the synthetic
agencies leave referral and outcome types to it (the loop itself runs in test_install.py)."""

from __future__ import annotations

from pathlib import Path

from broker.cli._demo_flags import flag_source
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


def test_the_flag_step_reports_as_an_agency_sharing_categories_with_the_team_unconsented() -> None:
    """Its two concerns reach the team without consent, categories included, so a flag
    rule on domestic abuse can see them."""
    policy = load_bundle(POLICIES)
    agency, etype = flag_source(policy, "sandwell-coord") or ("", "")
    clauses = [c for a in policy.bundle.agreements for c in a.clauses
               if agency in c.from_ and etype in c.event_types
               and "sandwell-coord" in c.to]  # fmt: skip
    assert clauses
    assert all(c.consent == "not_required" and "event.categories" in c.share for c in clauses)
    # A recipient no unconsented clause shares categories with: no flag step.
    assert flag_source(policy, "cog-tipton") is None
