"""Properties over generated bundles and events (hypothesis).

Default deny; withdrawing consent never adds a recipient or a field; adding a restriction
never adds a field; a suspended party never receives; every candidate gets exactly one
decision (and the candidates are exactly the parties some non-draft clause routes to).
"""

from __future__ import annotations

import copy
import uuid
from datetime import date, timedelta
from typing import Any
from unittest.mock import patch

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.events import FIELD_PATHS, ConsentRecord, ContactEvent, parse_consents, parse_event
from broker.policy import Bundle, Decision, Party, Policy
from broker.policy._cel import Condition
from broker.policy._model import TRANSFORM_TARGETS
from tests.unit.policy.kit import AT, PARTIES, cel_oracle

AGENCIES = ["wmp", "swbh", "housing"]
TYPES = ["police.domestic_incident", "health.ae_attendance", "housing.eviction_risk"]
RECIPIENTS = ["coord", "hub-tipton", "hub-wv10", "school-a", "hub:locality", "school:of-child"]
CONDITIONS = [
    None,
    "event.need_level >= 2",
    "event.need_level <= 3",
    "event.child_present",
    "'refuge' in event.categories",
    "recipient.kind != 'school'",
    "event.subjects.exists(s, s.role == 'child' && s.age < 11)",
    "event.subjects.exists(s, s.postcode_district == 'DY4' && has(s.school_urn))",
    "event.safeguarding.concern || size(event.subjects) > 2",
    "event.subjects.all(s, s.age == null || s.age >= 10) && event.need_level >= 2",
]
RESTRICTION_WHEN = [
    "event.service == 'sexual_health'",
    "'refuge' in event.categories",
    "event.need_level == 4",
    "recipient.kind == 'hub'",
    "true",
    "event.subjects.exists(s, s.role == 'child' && s.age < 11 && s.school_urn == recipient.urn)",
]
NHS = ["9997877896", "9999081002", "9991742182", "9993390755", "9997938348"]
POSTCODES = ["DY4 7AA", "WV10 6QA", "WV1 1AA", "B70 7AZ", "B3 2BJ"]
URNS = [None, "100001", "100002", "123456"]
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def clauses(draw: st.DrawFn, n: int) -> dict[str, Any]:
    share = draw(st.lists(st.sampled_from(FIELD_PATHS), min_size=1, max_size=8, unique=True))
    transform = {}
    for path in share:
        kinds = [k for k, targets in TRANSFORM_TARGETS.items() if path in targets]
        if kinds and draw(st.booleans()):
            transform[path] = draw(st.sampled_from(kinds))
    clause: dict[str, Any] = {
        "id": f"c{n}",
        "from": draw(st.lists(st.sampled_from(AGENCIES), min_size=1, max_size=3, unique=True)),
        "event_types": draw(st.lists(st.sampled_from(TYPES), min_size=1, max_size=3, unique=True)),
        "to": draw(st.lists(st.sampled_from(RECIPIENTS), min_size=1, max_size=3, unique=True)),
        "purpose": draw(st.sampled_from(["early_help", "safeguarding"])),
        "lawful_basis": {"article6": "public_task"},
        "consent": draw(
            st.sampled_from(["not_required", "required", "required_unless_safeguarding"])
        ),
        "share": share,
        "transform": transform,
    }
    if (when := draw(st.sampled_from(CONDITIONS))) is not None:
        clause["when"] = when
    if draw(st.booleans()):
        clause["subjects"] = draw(
            st.lists(
                st.sampled_from(["child", "parent", "carer"]), min_size=1, max_size=3, unique=True
            )
        )
    return clause


@st.composite
def restrictions(draw: st.DrawFn, n: int) -> dict[str, Any]:
    withhold: Any = (
        "all"
        if draw(st.booleans())
        else draw(st.lists(st.sampled_from(FIELD_PATHS), min_size=1, max_size=5, unique=True))
    )
    return {
        "id": f"r{n}",
        "when": draw(st.sampled_from(RESTRICTION_WHEN)),
        "withhold": withhold,
        "except_kinds": draw(
            st.lists(
                st.sampled_from(["coordinating_team", "school", "hub"]), max_size=2, unique=True
            )
        ),
    }


@st.composite
def bundles(draw: st.DrawFn) -> dict[str, Any]:
    agreements = []
    counter = 0
    for a in range(draw(st.integers(0, 3))):
        cs = []
        for _ in range(draw(st.integers(1, 3))):
            cs.append(draw(clauses(counter)))
            counter += 1
        agreements.append(
            {
                "id": f"a{a}",
                "title": "generated",
                "version": 1,
                "status": draw(st.sampled_from(["approved", "approved", "suspended", "draft"])),
                "valid_from": draw(
                    st.sampled_from([date(2025, 1, 1), date(2026, 11, 22), date(2027, 1, 1)])
                ),
                "valid_until": date(2028, 1, 1),
                "clauses": cs,
            }
        )
    rs = [draw(restrictions(i)) for i in range(draw(st.integers(0, 2)))]
    return {"agreements": agreements, "restrictions": rs}


@st.composite
def events(draw: st.DrawFn) -> ContactEvent:
    subjects = []
    for i in range(draw(st.integers(1, 4))):
        role = draw(st.sampled_from(["child", "child", "parent", "carer", "sibling"]))
        subject: dict[str, Any] = {
            "role": role,
            "nhs_number": NHS[i],
            "given_name": "Sam",
            "family_name": "Test",
            "dob": draw(st.sampled_from(["2010-05-01", "2019-03-02", "1990-01-01"])),
            "postcode": draw(st.sampled_from(POSTCODES)),
        }
        if (urn := draw(st.sampled_from(URNS))) is not None:
            subject["school_urn"] = urn
        subjects.append(subject)
    data = {
        "event_id": "5b0f6c1e-0d0a-4c1e-9d55-0a7c2b1e0001",
        "type": draw(st.sampled_from(TYPES)),
        "sender": draw(st.sampled_from(AGENCIES)),
        "occurred_at": "2026-11-21T22:40:00Z",
        "need_level": draw(st.integers(1, 4)),
        "child_present": draw(st.sampled_from([True, False, None])),
        "categories": draw(st.lists(st.sampled_from(["refuge", "domestic_abuse"]), unique=True)),
        "service": draw(st.sampled_from([None, "sexual_health"])),
        "safeguarding": {
            "concern": draw(st.booleans()),
            "justification": draw(st.sampled_from([None, "risk of harm"])),
        },
        "subjects": subjects,
    }
    return parse_event(data, now=AT)


@st.composite
def consent_lists(draw: st.DrawFn) -> list[ConsentRecord]:
    items = []
    for _ in range(draw(st.integers(0, 4))):
        items.append(
            {
                "subject": {"nhs_number": draw(st.sampled_from(NHS))},
                "state": draw(st.sampled_from(["given", "given", "refused", "withdrawn"])),
                "purposes": draw(st.sampled_from([["*"], ["early_help"], ["safeguarding"]])),
                "recipients": draw(st.sampled_from([["*"], ["kind:hub"], ["coord"], ["school-a"]])),
                "recorded_by": "coord",
                "recorded_at": draw(
                    st.sampled_from(["2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z"])
                ),
            }
        )
    return parse_consents(items, now=AT)


def _policy(spec: dict[str, Any], parties: dict[str, Any] | None = None) -> Policy:
    body = parties or PARTIES
    return Policy(
        Bundle.model_validate(
            {
                "parties": {pid: Party(id=pid, **p) for pid, p in body.items()},
                "agreements": spec["agreements"],
                "restrictions": spec["restrictions"],
            }
        )
    )


def _shares(decisions: list[Decision]) -> dict[str, set[str]]:
    return {d.recipient: set(d.fields_shared) for d in decisions if d.shares}


def _expected_candidates(policy: Policy, ev: ContactEvent) -> set[str]:
    """Candidates computed the slow, obvious way, straight from the brief."""
    out: set[str] = set()
    children = [s for s in ev.subjects if s.role == "child"]
    located = children or list(ev.subjects)
    for a in policy.bundle.agreements:
        if a.status == "draft":
            continue
        for c in a.clauses:
            if ev.sender not in c.from_ or ev.type not in c.event_types:
                continue
            for target in c.to:
                if target == "hub:locality":
                    for pid, p in policy.bundle.parties.items():
                        if p.kind != "hub":
                            continue
                        for s in located:
                            if s.postcode and any(
                                s.postcode.split(" ")[0] == loc or s.postcode[:-2] == loc
                                for loc in p.localities
                            ):
                                out.add(pid)
                elif target == "school:of-child":
                    urns = {s.school_urn for s in children}
                    out |= {
                        pid
                        for pid, p in policy.bundle.parties.items()
                        if p.kind == "school" and p.urn in urns
                    }
                else:
                    out.add(target)
    return out


@SETTINGS
@given(spec=bundles(), ev=events(), consents=consent_lists())
def test_every_candidate_gets_exactly_one_decision(
    spec: dict[str, Any], ev: ContactEvent, consents: list[ConsentRecord]
) -> None:
    policy = _policy(spec)
    decisions = policy.decide(ev, consents, at=AT)
    recipients = [d.recipient for d in decisions]
    assert len(recipients) == len(set(recipients))
    assert set(recipients) == _expected_candidates(policy, ev)


@SETTINGS
@given(spec=bundles(), ev=events(), consents=consent_lists())
def test_default_deny_every_share_is_grounded_in_a_routing_clause(
    spec: dict[str, Any], ev: ContactEvent, consents: list[ConsentRecord]
) -> None:
    policy = _policy(spec)
    clauses = {
        (a.id, c.id): c
        for a in policy.bundle.agreements
        if a.status == "approved"
        for c in a.clauses
    }
    for d in policy.decide(ev, consents, at=AT):
        if not d.shares:
            assert d.fields_shared == ()
            assert d.subjects == ()
            continue
        assert d.grounds
        allowed: set[str] = set()
        for g in d.grounds:
            c = clauses[(g.agreement_id, g.clause_id)]
            assert ev.sender in c.from_
            assert ev.type in c.event_types
            allowed |= set(c.share)
        assert set(d.fields_shared) <= allowed
    # Without any clause in force nobody receives anything.
    bare = _policy({"agreements": [], "restrictions": spec["restrictions"]})
    assert bare.decide(ev, consents, at=AT) == []


@SETTINGS
@given(spec=bundles(), ev=events(), consents=consent_lists(), who=st.sampled_from(NHS))
def test_withdrawing_consent_never_adds_a_recipient_or_a_field(
    spec: dict[str, Any], ev: ContactEvent, consents: list[ConsentRecord], who: str
) -> None:
    policy = _policy(spec)
    before = _shares(policy.decide(ev, consents, at=AT))
    withdrawal = parse_consents(
        [
            {
                "subject": {"nhs_number": who},
                "state": "withdrawn",
                "purposes": ["*"],
                "recipients": ["*"],
                "recorded_by": "coord",
                "recorded_at": "2026-11-01T00:00:00Z",
            }
        ],
        now=AT,
    )
    after = _shares(policy.decide(ev, [*consents, *withdrawal], at=AT))
    assert set(after) <= set(before)
    for rid, fields in after.items():
        assert fields <= before[rid]


@SETTINGS
@given(spec=bundles(), ev=events(), consents=consent_lists(), extra=restrictions(99))
def test_adding_a_restriction_never_adds_a_field(
    spec: dict[str, Any], ev: ContactEvent, consents: list[ConsentRecord], extra: dict[str, Any]
) -> None:
    before = _shares(_policy(spec).decide(ev, consents, at=AT))
    more = copy.deepcopy(spec)
    more["restrictions"].append(extra)
    after = _shares(_policy(more).decide(ev, consents, at=AT))
    assert set(after) <= set(before)
    for rid, fields in after.items():
        assert fields <= before[rid]


@SETTINGS
@given(
    spec=bundles(),
    ev=events(),
    consents=consent_lists(),
    suspended=st.sampled_from(["coord", "hub-tipton", "hub-wv10", "school-a", "wmp", "swbh"]),
)
def test_a_suspended_party_never_receives(
    spec: dict[str, Any], ev: ContactEvent, consents: list[ConsentRecord], suspended: str
) -> None:
    parties = copy.deepcopy(PARTIES)
    parties[suspended]["status"] = "suspended"
    decisions = _policy(spec, parties).decide(ev, consents, at=AT)
    for d in decisions:
        if suspended in (d.recipient, ev.sender):
            assert d.outcome == "not_shared"
            assert d.reason == "party-inactive"


@SETTINGS
@given(spec=bundles(), first=events(), ev=events(), consents=consent_lists())
def test_a_decision_is_the_same_whatever_was_decided_before(
    spec: dict[str, Any], first: ContactEvent, ev: ContactEvent, consents: list[ConsentRecord]
) -> None:
    """The engine reuses what it worked out for earlier events (refusals, CEL answers): none
    of it may show in a later decision, not another event's id, time or consent."""
    warm = _policy(spec)
    other = first.model_copy(update={"event_id": uuid.uuid4()})
    warm.decide(other, consents, at=AT + timedelta(days=3))
    warm.decide(ev, [], at=AT)
    again = warm.decide(ev, consents, at=AT)
    assert again == _policy(spec).decide(ev, consents, at=AT)
    for decision in again:  # no two decisions share a mutable value
        decision.transforms["x"] = "y"
        decision.subject_roles["x"] = 1
    assert warm.decide(ev, consents, at=AT) == _policy(spec).decide(ev, consents, at=AT)


@SETTINGS
@given(spec=bundles(), evs=st.lists(events(), min_size=1, max_size=3), consents=consent_lists())
def test_narrowed_views_and_memos_never_change_a_decision(
    spec: dict[str, Any], evs: list[ContactEvent], consents: list[ConsentRecord]
) -> None:
    """The engine as it runs, memos and all, over a run of events, against an engine whose
    every condition sees the whole event and remembers nothing (tests/unit/policy/kit.py)."""
    fast, slow = _policy(spec), _policy(spec)
    with patch.object(Condition, "evaluate", cel_oracle):
        expected = [slow.decide(ev, consents, at=AT) for ev in evs]
    assert [fast.decide(ev, consents, at=AT) for ev in evs] == expected
