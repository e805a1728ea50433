"""A consent record must speak the bundle's words on arrival: every purpose a clause's, every
``kind:K`` a kind of party, every party id a party of the bundle; else it is refused, and
says which word. Decisions never re-check the words of a record already filed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from broker.events import ConsentRecord, parse_consents, parse_event
from broker.policy import load_bundle, load_scenarios, run_scenario
from broker.policy._scenario import Expectation, Scenario

POLICIES = Path(__file__).resolve().parents[3] / "policies"


def _record(
    purposes: list[str], recipients: list[str], recorded_by: str = "sandwell-coord",
    state: str = "withdrawn",
) -> ConsentRecord:  # fmt: skip
    return ConsentRecord.model_validate({
        "subject": {"nhs_number": "9991760318"}, "state": state, "purposes": purposes,
        "recipients": recipients, "recorded_by": recorded_by,
        "recorded_at": "2026-11-05T14:00:00Z",
    })  # fmt: skip


@pytest.mark.parametrize(
    ("recorded_by", "purposes", "recipients", "refused"),
    [
        ("sandwell-coord", ["*"], ["*"], None),
        ("sandwell-coord", ["early_help"], ["kind:hub", "cog-tipton"], None),
        # A purpose only a suspended (or draft) agreement has is a real word.
        ("sandwell-coord", ["domestic_abuse_support"], ["kind:agency"], None),
        ("sandwell-coord", ["school-health"], ["kind:hub"], ("unknown-purpose", "school-health")),
        # A withdrawal naming none the bundle knows (above) withdraws nothing: refused.
        ("sandwell-coord", ["*", "knitting"], ["kind:hubs"], ("unknown-purpose", "knitting")),
        ("sandwell-coord", ["early_help"], ["kind:hubs"], ("unknown-recipient", "kind:hubs")),
        ("sandwell-coord", ["early_help"], ["cog-tiptn"], ("unknown-recipient", "cog-tiptn")),
        # Told it may not record consent at all, before any word it got wrong.
        ("wmp", ["early-help"], ["kind:hub"], ("not-a-consent-authority", None)),
        ("smethwick-fsp", ["early-help"], ["kind:hub"], ("party-inactive", None)),
        # The misspelling, not "outside-authority", for an authority of early_help alone.
        ("hv-wolverhampton", ["early-help"], ["kind:hub"], ("unknown-purpose", "early-help")),
        ("hv-wolverhampton", ["*"], ["kind:hub"], ("outside-authority", None)),
    ],
)
def test_a_record_naming_a_word_the_bundle_does_not_know_is_refused_on_arrival(
    recorded_by: str,
    purposes: list[str],
    recipients: list[str],
    refused: tuple[str, str | None] | None,
) -> None:
    policy = load_bundle(POLICIES)
    assert policy.refusal_on_arrival(_record(purposes, recipients, recorded_by)) == refused


def test_the_refusal_in_words_names_the_unknown_word_and_the_nearest_known_one() -> None:
    policy = load_bundle(POLICIES)
    assert policy.refusal_words("unknown-purpose", "early-help") == (
        "unknown-purpose: purpose 'early-help' is not one of the bundle's purposes: "
        "did you mean 'early_help'?"
    )
    assert policy.refusal_words("unknown-purpose", "knitting") == (
        "unknown-purpose: purpose 'knitting' is not one of the bundle's purposes: "
        "domestic_abuse_support, early_help, parenting_support, safeguarding"
    )
    assert policy.refusal_words("unknown-recipient", "kind:hubs") == (
        "unknown-recipient: recipient 'kind:hubs' is not a kind of party: did you mean 'kind:hub'?"
    )
    assert policy.refusal_words("unknown-recipient", "cog-tiptn") == (
        "unknown-recipient: recipient 'cog-tiptn' is not a party of the bundle; "
        "did you mean 'cog-tipton'?"
    )
    assert policy.refusal_words("not-a-consent-authority", None) == "not-a-consent-authority"


def test_a_filed_withdrawal_naming_a_word_the_bundle_no_longer_has_still_counts() -> None:
    """A later bundle that drops a party (or a purpose) must not put the consent it
    withdrew back in force: decisions do not re-check the record's words."""
    policy = load_bundle(POLICIES)
    [scenario] = [s for s in load_scenarios(POLICIES / "scenarios" / "consent.yaml")
                  if s.name.startswith("both children consented")]  # fmt: skip
    event = parse_event(scenario.event, now=scenario.at)
    consents = list(parse_consents(scenario.consents, now=None))
    gone = _record(["early_help"], ["cog-west-bromwich", "cog-gone"])
    assert policy.consent_refusal(gone) is None
    [d] = [d for d in policy.decide(event, [*consents, gone], at=scenario.at)
           if d.recipient == "cog-west-bromwich"]  # fmt: skip
    assert (d.outcome, d.reason) == ("not_shared", "consent-withdrawn")


def test_a_scenario_refuses_a_misspelt_record_as_the_worker_does() -> None:
    """Expected as refused, and not decided on: a grant for '*' and a misspelt purpose
    would otherwise let the hub hear."""
    policy = load_bundle(POLICIES)
    every = load_scenarios(POLICIES / "scenarios" / "consent.yaml")
    [scenario] = [s for s in every if isinstance(s, Scenario) and s.name.startswith("both chil")]
    misspelt = [{**c, "purposes": ["*", "early-help"]} for c in scenario.consents]
    changed = replace(
        scenario,
        consents=tuple(misspelt),
        expect={"cog-west-bromwich": Expectation(outcome="not_shared", reason="consent-missing")},
        refused={1: "unknown-purpose", 2: "unknown-purpose"},
    )
    result = run_scenario(changed, lambda _: policy)
    assert result.diffs == []
    wrong = replace(changed, refused={1: "unknown-purpose", 2: "outside-authority"})
    assert run_scenario(wrong, lambda _: policy).diffs == [
        "consent 2: expected refused (outside-authority), got refused (unknown-purpose)"
    ]


@pytest.mark.parametrize("state", ["given", "refused"])
@pytest.mark.parametrize(
    ("purposes", "recipients", "refused"),
    [
        (["*", "knitting"], ["*"], ("unknown-purpose", "knitting")),
        (["early_help"], ["*", "cog-tiptn"], ("unknown-recipient", "cog-tiptn")),
    ],
)
def test_a_grant_or_refusal_with_one_unknown_word_among_known_ones_is_refused_whole(
    state: str, purposes: list[str], recipients: list[str], refused: tuple[str, str]
) -> None:
    policy = load_bundle(POLICIES)
    record = _record(purposes, recipients, state=state)
    assert policy.refusal_on_arrival(record) == refused
    assert policy.ignored_on_arrival(record) == ()


@pytest.mark.parametrize(
    ("purposes", "recipients", "filed", "ignored"),
    [
        (["early_help", "school-health"], ["kind:hub"], (["early_help"], ["kind:hub"]),
         (("unknown-purpose", "school-health"),)),
        (["*", "knitting"], ["*", "cog-tiptn", "kind:hubs"], (["*"], ["*"]),
         (("unknown-purpose", "knitting"), ("unknown-recipient", "cog-tiptn"),
          ("unknown-recipient", "kind:hubs"))),
    ],
)  # fmt: skip
def test_a_withdrawal_with_unknown_words_is_filed_for_the_words_the_bundle_knows(
    purposes: list[str],
    recipients: list[str],
    filed: tuple[list[str], list[str]],
    ignored: tuple[tuple[str, str], ...],
) -> None:
    """Refused whole, it would keep sharing what the family withdrew in known words."""
    policy = load_bundle(POLICIES)
    record = _record(purposes, recipients)
    assert policy.refusal_on_arrival(record) is None
    assert policy.ignored_on_arrival(record) == ignored
    part = policy.filed_on_arrival(record)
    assert (list(part.purposes), list(part.recipients)) == filed
    assert (part.state, part.subject, part.recorded_at) == ("withdrawn", record.subject,
                                                            record.recorded_at)  # fmt: skip
    whole = _record(["early_help"], ["kind:hub"])
    assert policy.filed_on_arrival(whole) is whole
    assert policy.ignored_on_arrival(whole) == ()


def test_a_withdrawals_known_part_is_checked_against_the_senders_authority() -> None:
    """An authority for early_help alone may withdraw early_help beside a misspelt word,
    and may not withdraw '*' beside one."""
    policy = load_bundle(POLICIES)
    ok = _record(["early_help", "early-hlp"], ["kind:hub"], recorded_by="hv-wolverhampton")
    assert policy.refusal_on_arrival(ok) is None
    assert policy.ignored_on_arrival(ok) == (("unknown-purpose", "early-hlp"),)
    beyond = _record(["*", "early-hlp"], ["kind:hub"], recorded_by="hv-wolverhampton")
    assert policy.refusal_on_arrival(beyond) == ("outside-authority", None)
    assert policy.ignored_on_arrival(beyond) == ()


def test_a_scenario_decides_on_a_withdrawals_known_part_as_the_worker_does() -> None:
    """The withdrawal's known words stop the share; the misspelt one beside them, beyond
    an authority for early_help alone, does not make it count for nothing at decisions."""
    policy = load_bundle(POLICIES)
    every = load_scenarios(POLICIES / "scenarios" / "consent.yaml")
    [scenario] = [s for s in every if isinstance(s, Scenario) and s.name.startswith("both chil")]
    withdrawal = {**scenario.consents[0], "state": "withdrawn", "recorded_by": "hv-wolverhampton",
                  "purposes": ["early_help", "school-health"], "recipients": ["kind:hub"],
                  "recorded_at": "2026-11-20T09:00:00Z"}  # fmt: skip
    changed = replace(
        scenario,
        consents=(*scenario.consents, withdrawal),
        expect={"cog-west-bromwich": Expectation(outcome="not_shared", reason="consent-withdrawn")},
        refused={},
    )
    assert run_scenario(changed, lambda _: policy).diffs == []
