"""The demo's scripted referral loop picks its parties from the bundle, and the synthetic
agencies leave referral and outcome types to it (the loop itself runs in test_install.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from broker.cli import _demo_loop
from broker.cli._demo_flags import flag_source
from broker.cli._demo_loop import referral_parties
from broker.cli._demo_run import _routes
from broker.config import EnvelopeSettings
from broker.desk import Flag
from broker.policy import load_bundle
from broker.synthetic import SyntheticFamilies

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


class _Story:
    """The flag step's Kafka edges, faked: what was published and waited for, in order."""

    def __init__(self, *, held: bool) -> None:
        self.held = held
        self.steps: list[str] = []
        self.said: list[str] = []

    def publisher(self, *_args: object, **_kwargs: object) -> _Story:
        return self

    async def __aenter__(self) -> _Story:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        return None

    async def publish(self, event: dict[str, Any]) -> None:
        self.steps.append(f"publish {event['occurred_at']}")

    async def wait_until_held(self, *_args: object, within: float) -> bool:
        assert within > 0  # every wait is bounded
        self.steps.append("held?")
        return self.held

    async def wait_for_flag(self, _kafka: object, team: str, child: str, *, within: float) -> Flag:
        assert within > 0
        self.steps.append("flag?")
        now = datetime.now(UTC)
        return Flag(flag_id="f" * 32, party=team, rule="domestic-abuse-repeat", title="t",
                    child=child, event_ids=("a", "b"), trigger_event_id="b", raised_at=now,
                    window_seconds=30 * 86400)  # fmt: skip


def _run_flag_step(monkeypatch: pytest.MonkeyPatch, story: _Story) -> Flag | None:
    monkeypatch.setattr(_demo_loop, "Publisher", story.publisher)
    monkeypatch.setattr(_demo_loop, "wait_until_held", story.wait_until_held)
    monkeypatch.setattr(_demo_loop, "wait_for_flag", story.wait_for_flag)
    fam = SyntheticFamilies(seed=3)
    child = fam.subject("child", postcode="DY4 7AA", age=7)
    return asyncio.run(
        _demo_loop._flagged(
            lambda _p: None,  # type: ignore[arg-type,return-value]  # the fakes ignore it
            lambda _p: None,  # type: ignore[arg-type,return-value]
            load_bundle(POLICIES), team="sandwell-coord", child=child,
            linkage=b"k" * 32, fam=fam, say=story.said.append, envelope=EnvelopeSettings(),
        )
    )  # fmt: skip


def test_the_second_concern_is_sent_only_once_the_flag_service_holds_the_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sent back to back, the two could reach the desk newest first (random partitions) and
    then neither's window holds the other: no flag."""
    story = _Story(held=True)
    flag = _run_flag_step(monkeypatch, story)
    assert flag is not None
    assert [s.split()[0] for s in story.steps] == ["publish", "held?", "publish", "flag?"]
    first, second = (s.split()[1] for s in story.steps if s.startswith("publish"))
    assert first < second  # the older concern first
    assert [line.split(":")[0] for line in story.said] == ["flags 1/3", "flags 2/3", "flags 3/3"]


def test_a_flag_service_that_never_takes_the_first_concern_gets_no_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    story = _Story(held=False)
    assert _run_flag_step(monkeypatch, story) is None
    assert story.steps == [story.steps[0], "held?"]
    assert "did not take the record" in story.said[-1]
