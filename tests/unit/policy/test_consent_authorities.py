"""consent-authorities.yaml: who may record consent, for what; a record from anyone else, a
suspended party, or beyond the authority counts for no decision."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from broker.errors import BundleInvalid, ScenarioInvalid
from broker.events import ConsentRecord, parse_consents, parse_event
from broker.policy import Policy, ScenarioResult, load_bundle, load_scenarios, run_scenarios

POLICIES = Path(__file__).resolve().parents[3] / "policies"


def _bundle_with(tmp_path: Path, authorities: str) -> Path:
    bundle = tmp_path / "policies"
    shutil.copytree(POLICIES, bundle)
    (bundle / "consent-authorities.yaml").write_text(authorities)
    return bundle


def test_the_projects_authorities_load_and_change_the_bundle_version(tmp_path: Path) -> None:
    policy = load_bundle(POLICIES)
    assert policy.bundle.consent_authorities is not None
    assert policy.bundle.consent_authorities["hv-wolverhampton"].purposes == ("early_help",)
    without = tmp_path / "without"
    shutil.copytree(POLICIES, without)
    (without / "consent-authorities.yaml").unlink()
    assert load_bundle(without).version != policy.version


def test_an_unknown_party_or_kind_is_a_bundle_problem(tmp_path: Path) -> None:
    bundle = _bundle_with(tmp_path, (
        "consent_authorities:\n"
        "  nobody-here: {purposes: ['*'], recipients: ['*']}\n"
        "  sandwell-coord: {purposes: ['*'], recipients: ['kind:wizard', 'cog-nowhere']}\n"
    ))  # fmt: skip
    with pytest.raises(BundleInvalid) as err:
        load_bundle(bundle)
    problems = "\n".join(err.value.problems)
    assert "consent-authorities.yaml" in problems
    assert "unknown party 'nobody-here'" in problems
    assert "unknown party or kind 'kind:wizard'" in problems
    assert "unknown party or kind 'cog-nowhere'" in problems


def test_a_purpose_spelt_unlike_a_clauses_or_that_no_clause_has_is_a_bundle_problem(
    tmp_path: Path,
) -> None:
    """A typo authorised nothing real and left the purpose meant unauthorised, with 'ok'."""
    bundle = _bundle_with(tmp_path, (
        "consent_authorities:\n"
        "  sandwell-coord: {purposes: ['*'], recipients: ['*']}\n"
        "  hv-sandwell: {purposes: [early-help], recipients: ['*']}\n"
        "  hv-wolverhampton: {purposes: [early_help, earlyhelp, knitting], recipients: ['*']}\n"
    ))  # fmt: skip
    with pytest.raises(BundleInvalid) as err:
        load_bundle(bundle)
    assert [p.split(": ", 1)[1] for p in err.value.problems] == [
        "consent_authorities.hv-sandwell.purposes[0]: must be '*', or lower-case letters, "
        "digits and _ as a clause's purpose is written (early_help, not early-help)",
        "consent_authorities.hv-wolverhampton.purposes[1]: purpose 'earlyhelp' is no clause's "
        "purpose; did you mean 'early_help'?",
        "consent_authorities.hv-wolverhampton.purposes[2]: purpose 'knitting' is no clause's "
        "purpose; clauses' purposes: domestic_abuse_support, early_help, parenting_support, "
        "safeguarding",
    ]


def test_a_malformed_file_names_the_key(tmp_path: Path) -> None:
    bundle = _bundle_with(tmp_path, "consent_authorities:\n  sandwell-coord: {purposes: []}\n")
    with pytest.raises(BundleInvalid) as err:
        load_bundle(bundle)
    assert any("sandwell-coord" in p for p in err.value.problems)


def _record(recorded_by: str, purposes: list[str], recipients: list[str]) -> ConsentRecord:
    return ConsentRecord.model_validate({
        "subject": {"nhs_number": "9991760318"}, "state": "given", "purposes": purposes,
        "recipients": recipients, "recorded_by": recorded_by,
        "recorded_at": "2026-10-05T14:00:00Z",
    })  # fmt: skip


@pytest.mark.parametrize(
    ("recorded_by", "purposes", "recipients", "refusal"),
    [
        ("sandwell-coord", ["*"], ["*"], None),  # may record anything
        ("wmp", ["early_help"], ["kind:hub"], "not-a-consent-authority"),  # not listed
        ("no-such-party", ["early_help"], ["kind:hub"], "not-a-consent-authority"),
        ("smethwick-fsp", ["early_help"], ["kind:hub"], "party-inactive"),  # listed, suspended
        ("hv-wolverhampton", ["early_help"], ["kind:hub"], None),
        ("hv-wolverhampton", ["*"], ["kind:hub"], "outside-authority"),  # '*' needs '*'
        ("hv-wolverhampton", ["early_help", "safeguarding"], ["kind:hub"], "outside-authority"),
        ("hv-wolverhampton", ["early_help"], ["*"], "outside-authority"),
        ("hv-wolverhampton", ["early_help"], ["cog-tipton"], None),  # kind:hub covers a hub
        ("hv-wolverhampton", ["early_help"], ["school-146201"], "outside-authority"),
        ("hv-wolverhampton", ["early_help"], ["kind:school"], "outside-authority"),
        ("hv-sandwell", ["early_help"], ["smethwick-fsp"], None),  # a party id covers itself
        ("swbh", ["safeguarding"], ["kind:hub", "sandwell-coord"], None),
    ],
)
def test_a_consent_counts_only_within_its_recorders_authority(
    recorded_by: str, purposes: list[str], recipients: list[str], refusal: str | None
) -> None:
    policy = load_bundle(POLICIES)
    assert policy.consent_refusal(_record(recorded_by, purposes, recipients)) == refusal


def test_without_the_file_only_active_coordinating_teams_may_record_consent() -> None:
    project = load_bundle(POLICIES)
    policy = Policy(project.bundle.model_copy(update={"consent_authorities": None}))
    assert policy.consent_refusal(_record("sandwell-coord", ["*"], ["*"])) is None
    assert policy.consent_refusal(_record("swbh", ["*"], ["*"])) == "not-a-consent-authority"


def test_decide_gives_a_refused_consent_no_weight() -> None:
    """The same consent, recorded by the co-ordinating team and by the police."""
    policy = load_bundle(POLICIES)
    [scenario] = [s for s in load_scenarios(POLICIES / "scenarios" / "consent.yaml")
                  if s.name.startswith("both children consented")]  # fmt: skip
    event = parse_event(scenario.event, now=scenario.at)
    consents = parse_consents(scenario.consents, now=None)
    police = [c.model_copy(update={"recorded_by": "wmp"}) for c in consents]

    def outcome(records: list[ConsentRecord]) -> tuple[str, str | None]:
        [d] = [d for d in policy.decide(event, records, at=scenario.at)
               if d.recipient == "cog-west-bromwich"]  # fmt: skip
        return d.outcome, d.reason

    assert outcome(list(consents)) == ("shared", None)
    assert outcome(police) == ("not_shared", "consent-missing")


def test_a_scenario_that_expects_a_refusal_fails_when_the_consent_counts(tmp_path: Path) -> None:
    text = (POLICIES / "scenarios" / "consent.yaml").read_text()
    # The police-recorded consent becomes the co-ordinating team's: it now counts.
    changed = text.replace("      recorded_by: wmp\n", "      recorded_by: sandwell-coord\n")
    assert changed != text
    (tmp_path / "consent.yaml").write_text(changed)
    results = [r for r in run_scenarios([tmp_path / "consent.yaml"], POLICIES)
               if isinstance(r, ScenarioResult) and "police" in r.scenario.name]  # fmt: skip
    [result] = results
    assert "consent 2: expected refused (not-a-consent-authority), got counted" in result.diffs


def test_refused_consents_must_name_positions_in_the_list(tmp_path: Path) -> None:
    file = tmp_path / "s.yaml"
    file.write_text(
        "- name: x\n  at: 2026-11-23T08:00:00Z\n  consents: []\n  event: {a: 1}\n"
        "  expect: {sandwell-coord: {outcome: shared}}\n"
        "  refused_consents: [{consent: 1, reason: party-inactive}]\n"
    )
    with pytest.raises(ScenarioInvalid, match="N from 1 to 0"):
        load_scenarios(file)
