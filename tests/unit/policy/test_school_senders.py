"""What docs/sdk.md and docs/policy-language.md tell senders about Operation Encompass, under
the project's own bundle: a brother or sister reaches their school only as role ``child``, and
the free text goes to every school the notice reaches as it was written."""

from __future__ import annotations

from pathlib import Path

from broker.policy import Policy, redact
from tests.unit.policy.kit import AT, by_recipient, event, subject

REPO = Path(__file__).resolve().parents[3]
SUMMARY = "Zain said he took Maya into his room."
VOICE = "Maya said she hid."


def _decide(brother_role: str) -> dict[str, object]:
    ev = event(
        summary=SUMMARY,
        child_voice=VOICE,
        subjects=[
            subject("child", given_name="Maya", school_urn="146201"),
            subject(brother_role, nhs_number="9994410008", given_name="Zain",
                    dob="2014-09-02", school_urn="146202"),
        ],
    )  # fmt: skip
    policy = Policy.load(REPO / "policies")
    found = by_recipient(policy.decide(ev, [], at=AT))
    return {
        school: redact(ev, found[school])
        for school in ("school-146201", "school-146202")
        if school in found and found[school].outcome == "shared"
    }


def test_a_brother_sent_as_sibling_reaches_no_school_of_his_own() -> None:
    assert list(_decide("sibling")) == ["school-146201"]


def test_sent_as_a_child_each_school_has_its_own_pupil_and_the_free_text_unchanged() -> None:
    views = _decide("child")
    assert sorted(views) == ["school-146201", "school-146202"]
    for school, pupil in (("school-146201", "Maya"), ("school-146202", "Zain")):
        view = views[school]
        assert isinstance(view, dict)
        assert [s["given_name"] for s in view["subjects"]] == [pupil]
        # Not cut per child: both schools read both names in it.
        assert view["summary"] == SUMMARY
        assert view["child_voice"] == VOICE
