"""decide(): the brief's decision semantics, rule by rule, on the kit's bundle."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path

import pytest

from broker.policy import Policy
from tests.unit.policy.kit import (
    AT,
    CHILD2_NHS,
    CHILD_NHS,
    ENCOMPASS,
    PARENT_NHS,
    PARTIES,
    TO_HUB,
    agreement,
    by_recipient,
    consent,
    default_agreements,
    event,
    load,
    subject,
)


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    return load(tmp_path / "bundle")


def test_candidates_are_the_parties_a_clause_routes_to(policy: Policy) -> None:
    decisions = by_recipient(policy.decide(event(), [], at=AT))
    assert set(decisions) == {"coord", "hub-tipton", "school-a"}


def test_an_unrouted_sender_or_type_gets_no_decisions(policy: Policy) -> None:
    assert policy.decide(event(type="education.exclusion"), [], at=AT) == []
    assert policy.decide(event(sender="someone-else"), [], at=AT) == []


def test_not_required_clause_shares_the_named_fields_only(policy: Policy) -> None:
    d = by_recipient(policy.decide(event(), [], at=AT))["coord"]
    assert d.outcome == "shared"
    assert d.reason is None
    assert d.clause_ids == ("police-to-coord",)
    assert d.agreement_id == "early-help"
    assert d.agreement_version == "1"
    assert d.purpose == "safeguarding"
    assert d.lawful_basis is not None
    assert d.lawful_basis.article10 == "safeguarding_children"
    assert "event.child_voice" not in d.fields_shared
    assert "subject.nhs_number" in d.fields_shared
    assert d.subjects == (0, 1)
    assert d.subject_roles == {"child": 1, "parent": 1}
    assert d.policy_version == policy.version


def test_required_consent_missing_refuses_with_consent_missing(policy: Policy) -> None:
    d = by_recipient(policy.decide(event(), [], at=AT))["hub-tipton"]
    assert (d.outcome, d.reason, d.consent) == ("not_shared", "consent-missing", "missing")
    assert d.fields_shared == ()
    assert d.subjects == ()


def test_consent_given_shares_with_transforms(policy: Policy) -> None:
    d = by_recipient(policy.decide(event(), [consent()], at=AT))["hub-tipton"]
    assert d.outcome == "shared"
    assert d.consent == "given"
    assert d.transforms == {"subject.dob": "age_band", "subject.postcode": "postcode_district"}


def test_latest_record_in_force_wins(policy: Policy) -> None:
    given = consent(recorded_at="2026-10-01T09:00:00Z")
    withdrawn = consent(state="withdrawn", purposes=["*"], recorded_at="2026-11-01T09:00:00Z")
    later_given = consent(recorded_at="2026-11-10T09:00:00Z")
    hub = lambda cs: by_recipient(policy.decide(event(), cs, at=AT))["hub-tipton"]  # noqa: E731  # a local shorthand
    assert hub([given, withdrawn]).reason == "consent-withdrawn"
    assert hub([withdrawn, given]).reason == "consent-withdrawn"
    assert hub([given, withdrawn, later_given]).outcome == "shared"


def test_a_withdrawal_with_nhs_number_and_demographics_covers_a_child_named_without_one(
    policy: Policy,
) -> None:
    demographics = {"given_name": "Amy", "family_name": "Hollis", "dob": "2019-03-02"}
    given = consent(subject={"nhs_number": None, **demographics})
    withdrawn = consent(
        state="withdrawn", purposes=["*"], recorded_at="2026-11-01T09:00:00Z",
        subject={"nhs_number": CHILD_NHS, **demographics},
    )  # fmt: skip
    no_nhs = event(subjects=[subject("child", nhs_number=None), subject("parent")])
    hub = by_recipient(policy.decide(no_nhs, [given, withdrawn], at=AT))["hub-tipton"]
    assert (hub.outcome, hub.reason) == ("not_shared", "consent-withdrawn")
    # Another child who shares the names and birthday but not the NHS number is not covered.
    twin = event(subjects=[subject("child", nhs_number=CHILD2_NHS), subject("parent")])
    given_twin = consent(CHILD2_NHS)
    assert (
        by_recipient(policy.decide(twin, [given_twin, withdrawn], at=AT))["hub-tipton"].outcome
        == "shared"
    )


def test_a_record_not_yet_recorded_or_expired_is_not_in_force(policy: Policy) -> None:
    future = consent(recorded_at="2026-12-01T00:00:00Z")
    expired = consent(valid_until="2026-11-01")
    for records in ([future], [expired]):
        d = by_recipient(policy.decide(event(), records, at=AT))["hub-tipton"]
        assert d.reason == "consent-missing"


def test_consent_must_cover_the_purpose_and_recipient(policy: Policy) -> None:
    wrong_purpose = consent(purposes=["safeguarding"])
    wrong_recipient = consent(recipients=["hub-wv10"])
    by_id = consent(recipients=["hub-tipton"])
    hub = lambda cs: by_recipient(policy.decide(event(), cs, at=AT))["hub-tipton"]  # noqa: E731  # shorthand
    assert hub([wrong_purpose]).reason == "consent-missing"
    assert hub([wrong_recipient]).reason == "consent-missing"
    assert hub([by_id]).outcome == "shared"


def test_consent_is_over_child_subjects_every_child_must_consent(policy: Policy) -> None:
    ev = event(
        subjects=[subject("child"), subject("child", nhs_number=CHILD2_NHS), subject("parent")]
    )
    one = by_recipient(policy.decide(ev, [consent(CHILD_NHS)], at=AT))["hub-tipton"]
    assert one.reason == "consent-missing"
    both = by_recipient(policy.decide(ev, [consent(CHILD_NHS), consent(CHILD2_NHS)], at=AT))
    assert both["hub-tipton"].outcome == "shared"
    # A parent's consent does not stand in for a child's.
    parent_only = by_recipient(policy.decide(ev, [consent(PARENT_NHS)], at=AT))["hub-tipton"]
    assert parent_only.reason == "consent-missing"


def test_withdrawn_beats_refused_beats_missing_across_children(policy: Policy) -> None:
    ev = event(subjects=[subject("child"), subject("child", nhs_number=CHILD2_NHS)])
    refused = [consent(CHILD_NHS, "refused"), consent(CHILD2_NHS)]
    assert by_recipient(policy.decide(ev, refused, at=AT))["hub-tipton"].reason == "consent-refused"
    both = [consent(CHILD_NHS, "refused"), consent(CHILD2_NHS, "withdrawn")]
    assert by_recipient(policy.decide(ev, both, at=AT))["hub-tipton"].reason == "consent-withdrawn"


def test_without_a_child_all_subjects_consent(policy: Policy) -> None:
    ev = event(subjects=[subject("parent"), subject("carer", nhs_number=CHILD2_NHS)])
    partial = by_recipient(policy.decide(ev, [consent(PARENT_NHS)], at=AT))["hub-tipton"]
    assert partial.reason == "consent-missing"
    full = by_recipient(policy.decide(ev, [consent(PARENT_NHS), consent(CHILD2_NHS)], at=AT))
    assert full["hub-tipton"].outcome == "shared"


def test_safeguarding_concern_with_justification_overrides_for_the_unless_clause(
    policy: Policy,
) -> None:
    sg = {"concern": True, "justification": "Asking would put the child at risk."}
    ev = event(type="health.ae_attendance", sender="swbh", safeguarding=sg)
    d = by_recipient(policy.decide(ev, [], at=AT))
    assert d["coord"].outcome == "shared_override"
    assert d["coord"].lawful_basis is not None
    assert d["coord"].lawful_basis.article9 == "safeguarding_children"
    assert d["coord"].review_required
    assert d["coord"].override_grounds == "safeguarding_concern"
    assert d["coord"].grounds[0].lawful_basis.article9 == "safeguarding_children"
    # A clause that needs consent outright is not overridden.
    assert d["hub-tipton"].reason == "consent-missing"


# "\u200b" (zero-width space), "\ufeff" (BOM), "\u2060" (word joiner): format characters,
# that show nothing, so the justification looks empty to whoever reviews the override.
@pytest.mark.parametrize("justification", [None, "", "   ", "\u200b", "\ufeff", "\u2060\u200b "])
def test_a_concern_without_justification_does_not_override(
    policy: Policy, justification: str | None
) -> None:
    ev = event(
        type="health.ae_attendance",
        sender="swbh",
        safeguarding={"concern": True, "justification": justification},
    )
    assert by_recipient(policy.decide(ev, [], at=AT))["coord"].reason == "consent-missing"


def test_need_level_4_overrides_even_refused_consent(policy: Policy) -> None:
    ev = event(type="health.ae_attendance", sender="swbh", need_level=4)
    refused = consent(state="refused", purposes=["*"], recipients=["*"])
    d = by_recipient(policy.decide(ev, [refused], at=AT))["coord"]
    assert d.outcome == "shared_override"
    assert d.consent == "refused"
    assert d.override_grounds == "need_level_4"


def test_given_consent_is_a_plain_share_not_an_override(policy: Policy) -> None:
    ev = event(type="health.ae_attendance", sender="swbh", need_level=4)
    given = consent(recipients=["kind:coordinating_team"])
    d = by_recipient(policy.decide(ev, [given], at=AT))["coord"]
    assert d.outcome == "shared"
    assert d.lawful_basis is not None
    assert d.lawful_basis.article9 == "health_or_social_care"
    assert not d.review_required


def test_condition_false(policy: Policy) -> None:
    d = by_recipient(policy.decide(event(need_level=1), [consent()], at=AT))
    assert d["coord"].reason == "condition-false"
    assert d["school-a"].outcome == "shared"


def test_agreement_out_of_date_is_inactive_whole_days_inclusive(policy: Policy) -> None:
    last_day = datetime(2027, 12, 31, 23, 59, tzinfo=UTC)
    after = datetime(2028, 1, 1, 0, 0, tzinfo=UTC)
    ev = event(occurred_at="2026-11-21T22:40:00Z")
    assert by_recipient(policy.decide(ev, [], at=last_day))["coord"].outcome == "shared"
    assert by_recipient(policy.decide(ev, [], at=after))["coord"].reason == "agreement-inactive"


def test_suspended_agreement_is_inactive_draft_yields_nothing(tmp_path: Path) -> None:
    agreements = default_agreements()
    agreements[0]["status"] = "suspended"
    agreements[1]["status"] = "draft"
    policy = load(tmp_path / "b", agreements=agreements)
    d = by_recipient(policy.decide(event(), [], at=AT))
    assert set(d) == {"coord", "hub-tipton"}
    assert {x.reason for x in d.values()} == {"agreement-inactive"}


def test_suspended_recipient_and_suspended_sender_are_party_inactive(tmp_path: Path) -> None:
    policy = load(tmp_path / "a")
    ev = event(subjects=[subject("child", postcode="B70 7AZ")])
    d = by_recipient(policy.decide(ev, [consent()], at=AT))
    assert (d["hub-closed"].outcome, d["hub-closed"].reason) == ("not_shared", "party-inactive")
    parties = copy.deepcopy(PARTIES)
    parties["wmp"]["status"] = "suspended"
    policy = load(tmp_path / "b", parties=parties)
    decisions = policy.decide(event(), [consent()], at=AT)
    assert decisions
    assert {x.reason for x in decisions} == {"party-inactive"}


def test_hub_locality_by_district_and_sector(policy: Policy) -> None:
    sector = event(subjects=[subject("child", postcode="WV10 6QA")])
    got = set(by_recipient(policy.decide(sector, [], at=AT)))
    # WV10 district hub and the WV10 6 sector hub cover it; WV1 does not cover WV10 6QA.
    assert {"hub-wv10", "hub-wv10-6"} <= got
    assert "hub-wv1" not in got
    other_sector = event(subjects=[subject("child", postcode="WV10 7AA")])
    got = set(by_recipient(policy.decide(other_sector, [], at=AT)))
    assert "hub-wv10" in got
    assert "hub-wv10-6" not in got
    wv1 = event(subjects=[subject("child", postcode="WV1 1AA")])
    got = set(by_recipient(policy.decide(wv1, [], at=AT)))
    assert "hub-wv1" in got
    assert "hub-wv10" not in got


def test_hub_locality_uses_child_postcodes_or_any_subject_without_a_child(policy: Policy) -> None:
    mixed = event(
        subjects=[subject("child", postcode="DY4 7AA"), subject("parent", postcode="WV1 1AA")]
    )
    got = set(by_recipient(policy.decide(mixed, [], at=AT)))
    assert "hub-tipton" in got
    assert "hub-wv1" not in got
    adults = event(subjects=[subject("parent", postcode="WV1 1AA")])
    assert "hub-wv1" in set(by_recipient(policy.decide(adults, [], at=AT)))


def test_each_school_receives_only_its_own_pupils(policy: Policy) -> None:
    ev = event(
        subjects=[
            subject("child", school_urn="100001"),
            subject("child", nhs_number=CHILD2_NHS, school_urn="100002"),
            subject("child", nhs_number="9993390755", school_urn="999999"),
            subject("parent"),
        ]
    )
    d = by_recipient(policy.decide(ev, [], at=AT))
    assert d["school-a"].subjects == (0,)
    assert d["school-b"].subjects == (1,)
    assert d["school-a"].subject_roles == {"child": 1}


def test_restriction_withhold_all_suppresses_except_kinds(policy: Policy) -> None:
    ev = event(type="health.ae_attendance", sender="swbh", service="sexual_health")
    given = consent(recipients=["*"], purposes=["*"])
    d = by_recipient(policy.decide(ev, [given], at=AT))
    assert (d["hub-tipton"].outcome, d["hub-tipton"].reason) == ("not_shared", "suppressed")
    assert d["hub-tipton"].restrictions == ("sensitive-services",)
    assert d["coord"].outcome == "shared"


def test_field_restriction_withholds_fields_and_names_itself(policy: Policy) -> None:
    d = by_recipient(policy.decide(event(categories=["domestic_abuse", "refuge"]), [], at=AT))
    coord = d["coord"]
    assert coord.outcome == "shared"
    assert not {"subject.address", "subject.postcode", "event.location"} & set(coord.fields_shared)
    assert set(coord.fields_withheld) == {"subject.address", "subject.postcode", "event.location"}
    assert coord.restrictions == ("refuge-address",)
    assert "event.location" in d["school-a"].fields_withheld


def test_several_clauses_plain_share_wins_and_fields_are_the_union(tmp_path: Path) -> None:
    extra = copy.deepcopy(ENCOMPASS)
    extra.update(id="hub-notice", to=["hub-tipton"], share=["event.summary"], subjects=None)
    del extra["subjects"]
    hub_clause = copy.deepcopy(TO_HUB)
    policy = load(tmp_path / "b", agreements=[agreement("a", [hub_clause, extra])])
    d = by_recipient(policy.decide(event(), [], at=AT))["hub-tipton"]
    assert d.outcome == "shared"
    assert d.clause_ids == ("hub-notice",)
    with_consent = by_recipient(policy.decide(event(), [consent()], at=AT))["hub-tipton"]
    assert set(with_consent.clause_ids) == {"to-hub", "hub-notice"}
    assert "event.summary" in with_consent.fields_shared
    assert "subject.postcode" in with_consent.fields_shared


def test_the_reason_of_highest_precedence_is_reported(tmp_path: Path) -> None:
    inactive = copy.deepcopy(TO_HUB)
    inactive["id"] = "old"
    cond = copy.deepcopy(TO_HUB)
    cond.update(id="cond", when="event.need_level >= 4")
    policy = load(
        tmp_path / "b",
        agreements=[
            agreement("live", [copy.deepcopy(TO_HUB), cond]),
            agreement("lapsed", [inactive], valid_until="2026-06-30"),
        ],
    )
    d = by_recipient(policy.decide(event(), [consent(state="refused")], at=AT))["hub-tipton"]
    assert d.reason == "consent-refused"
    assert d.clause_ids == ("to-hub",)


def test_a_condition_that_errors_does_not_hold(tmp_path: Path) -> None:
    clause = copy.deepcopy(ENCOMPASS)
    clause["when"] = "event.location.startsWith('Family')"  # location may be null
    policy = load(tmp_path / "b", agreements=[agreement("a", [clause])])
    assert (
        by_recipient(policy.decide(event(location=None), [], at=AT))["school-a"].reason
        == "condition-false"
    )
    assert by_recipient(policy.decide(event(), [], at=AT))["school-a"].outcome == "shared"


def test_a_restriction_that_errors_holds(tmp_path: Path) -> None:
    restriction = {"id": "r", "when": "event.location.startsWith('Refuge')", "withhold": "all"}
    policy = load(tmp_path / "b", restrictions=[restriction])
    d = by_recipient(policy.decide(event(location=None), [], at=AT))
    assert {x.reason for x in d.values()} == {"suppressed"}


def test_conditions_may_read_the_recipient(tmp_path: Path) -> None:
    restriction = {
        "id": "no-schools",
        "when": "recipient.kind == 'school'",
        "withhold": ["event.location"],
    }
    policy = load(tmp_path / "b", restrictions=[restriction])
    d = by_recipient(policy.decide(event(), [], at=AT))
    assert "event.location" in d["school-a"].fields_withheld
    assert "event.location" in d["coord"].fields_shared


def test_memoised_conditions_give_the_same_answers_as_fresh_ones(policy: Policy) -> None:
    for level in (1, 2, 3, 4, 3, 2, 1):
        d = by_recipient(policy.decide(event(need_level=level), [], at=AT))
        assert (d["coord"].reason == "condition-false") == (level < 2)


def test_decisions_round_trip_through_json(policy: Policy) -> None:
    from broker.policy import Decision  # only this test needs it

    for d in policy.decide(event(), [consent()], at=AT):
        assert Decision.model_validate_json(d.model_dump_json()) == d


def test_decisions_carry_no_personal_values(policy: Policy) -> None:
    ev = event()
    dumped = " ".join(d.model_dump_json() for d in policy.decide(ev, [consent()], at=AT))
    for s in ev.subjects:
        for value in (s.nhs_number, s.given_name, s.family_name, s.postcode, s.address):
            assert value is not None
            assert value not in dumped
    assert str(ev.subjects[0].dob) not in dumped


def test_naive_decision_time_is_refused(policy: Policy) -> None:
    with pytest.raises(ValueError, match="timezone"):
        policy.decide(event(), [], at=datetime(2026, 11, 22))  # noqa: DTZ001  # deliberately naive
