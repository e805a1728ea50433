"""redact() never lets out a value its decision does not grant (hypothesis).

Every field of the event carries a value found nowhere else, and decisions are generated
freely: any fields, any transforms the policy language allows, any subset of the people,
with or without per-person scopes. The view may hold only the keys the grant names, and the
text of the whole view (what is sealed to the recipient) none of the values it does not
grant: not a person outside ``decision.subjects``, not a field outside that person's grant,
not the original of a transformed field.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from broker._canonical import canonical_json
from broker.events import FIELD_PATHS, ContactEvent, parse_event
from broker.pipeline._encoding import payload_json
from broker.policy import Decision, redact
from broker.policy._decision import SubjectScope
from broker.policy._model import TRANSFORM_TARGETS
from tests.unit.policy.kit import AT

KEY = b"k" * 32
NHS = ["9997877896", "9999081002", "9991742182", "9993390755"]
POSTCODES = ["DY4 7AA", "WV10 6QA", "B70 7AZ", "WV1 1AA"]
EVENT_VALUES = {
    "event.reference": "REF-MARK-77",
    "event.summary": "SUMMARY-MARK",
    "event.child_voice": "VOICE-MARK",
    "event.location": "LOCATION-MARK",
    "event.categories": "refuge",
    "event.service": "sexual_health",
}
# Where each granted subject field may travel, by transform (None: as it is).
SUBJECT_KEYS = {
    "subject.name": {None: {"given_name", "family_name"}, "initials": {"initials"},
                     "pseudonym": {"name_pseudonym"}},
    "subject.dob": {None: {"dob"}, "age_band": {"age_band"},
                    "year_of_birth": {"year_of_birth"}, "pseudonym": {"dob_pseudonym"}},
    "subject.postcode": {None: {"postcode"}, "postcode_district": {"postcode_district"},
                         "pseudonym": {"postcode_pseudonym"}},
}  # fmt: skip
ALWAYS = {"event_id", "type", "sender", "occurred_at", "sharing", "subjects"}


def _subject(i: int, role: str) -> dict[str, Any]:
    return {
        "role": role,
        "nhs_number": NHS[i],
        "given_name": f"Given{'abcd'[i]}mark",
        "family_name": f"Family{'abcd'[i]}mark",
        "dob": f"201{i}-0{i + 1}-1{i}",
        "address": f"{i + 1} Marker Street",
        "postcode": POSTCODES[i],
        "school_urn": f"90000{i}",
    }


def _raw(subject: dict[str, Any], path: str) -> list[str]:
    """The original values of a subject field, as they would appear in JSON text."""
    if path == "subject.name":
        return [subject["given_name"], subject["family_name"]]
    return [subject[path.removeprefix("subject.")]]


@st.composite
def grants(draw: st.DrawFn) -> tuple[ContactEvent, Decision]:
    roles = draw(st.lists(st.sampled_from(["child", "parent", "carer"]), min_size=1, max_size=4))
    ev = parse_event(
        {
            "event_id": "5b0f6c1e-0d0a-4c1e-9d55-0a7c2b1e0001",
            "type": "police.domestic_incident",
            "sender": "wmp",
            "occurred_at": "2026-11-21T22:40:00Z",
            "reference": EVENT_VALUES["event.reference"],
            "summary": EVENT_VALUES["event.summary"],
            "child_voice": EVENT_VALUES["event.child_voice"],
            "location": EVENT_VALUES["event.location"],
            "categories": [EVENT_VALUES["event.categories"]],
            "service": EVENT_VALUES["event.service"],
            "need_level": 3,
            "child_present": True,
            "subjects": [_subject(i, role) for i, role in enumerate(roles)],
        },
        now=AT,
    )
    shared = draw(st.lists(st.sampled_from(FIELD_PATHS), unique=True))
    transforms = draw(_transforms(shared))
    people = draw(st.lists(st.sampled_from(range(len(roles))), unique=True).map(sorted))
    scopes: list[SubjectScope] = []
    if people and draw(st.booleans()):
        subject_paths = [p for p in shared if p.startswith("subject.")]
        for i in draw(st.lists(st.sampled_from(people), unique=True)):
            fields = (
                draw(st.lists(st.sampled_from(subject_paths), unique=True)) if subject_paths else []
            )
            scopes.append(SubjectScope(subject=i, fields=tuple(fields),
                                       transforms=draw(_transforms(fields))))  # fmt: skip
    decision = Decision(
        event_id=ev.event_id,
        event_type=ev.type,
        sender=ev.sender,
        recipient="hub-x",
        recipient_kind="hub",
        outcome=draw(st.sampled_from(["shared", "shared_override"])),
        clause_ids=("c1",),
        fields_shared=tuple(shared),
        transforms=transforms,
        subjects=tuple(people),
        subject_scopes=tuple(scopes),
        decided_at=AT,
        policy_version="v1",
    )
    return ev, decision


def _transforms(paths: list[str]) -> st.SearchStrategy[dict[str, str]]:
    options = {
        p: sorted(kind for kind, targets in TRANSFORM_TARGETS.items() if p in targets)
        for p in paths
    }
    candidates = {p: kinds for p, kinds in options.items() if kinds}
    if not candidates:
        return st.just({})
    return st.fixed_dictionaries(
        {}, optional={p: st.sampled_from(kinds) for p, kinds in candidates.items()}
    )


def _allowed(path: str, transform: str | None) -> set[str]:
    if path in SUBJECT_KEYS:
        return SUBJECT_KEYS[path].get(transform, set())
    key = path.removeprefix("subject.").removeprefix("event.")
    return {f"{key}_pseudonym"} if transform == "pseudonym" else {key}


@settings(max_examples=300, deadline=None)
@given(grant=grants())
def test_a_view_holds_nothing_its_decision_does_not_grant(
    grant: tuple[ContactEvent, Decision],
) -> None:
    ev, decision = grant
    view = redact(ev, decision, pseudonym_key=KEY)
    text = canonical_json(view).decode()

    event_paths = [p for p in decision.fields_shared if p.startswith("event.")]
    allowed = ALWAYS | {k for p in event_paths for k in _allowed(p, decision.transforms.get(p))}
    assert set(view) <= allowed
    for path, value in EVENT_VALUES.items():
        if path not in decision.fields_shared or decision.transforms.get(path) == "pseudonym":
            assert value not in text, path

    scopes = {sc.subject: sc for sc in decision.subject_scopes}
    views = view.get("subjects", [{} for _ in decision.subjects])
    assert len(views) == len(decision.subjects)
    for i, person in enumerate(ev.subjects):
        subject = _subject(i, person.role)  # its values, as the event was built
        if i not in decision.subjects:
            for path in SUBJECT_KEYS.keys() | {"subject.nhs_number", "subject.address",
                                               "subject.school_urn"}:  # fmt: skip
                assert not any(v in text for v in _raw(subject, path)), (i, path)
            continue
        if decision.subject_scopes:  # with scopes, a person without one gets nothing
            scope = scopes.get(i)
            fields, transforms = (scope.fields, scope.transforms) if scope else ((), {})
        else:
            fields, transforms = decision.fields_shared, decision.transforms
        granted = {p: transforms.get(p) for p in fields if p.startswith("subject.")}
        keys = set().union(*(_allowed(p, t) for p, t in granted.items()))
        assert set(views[decision.subjects.index(i)]) <= keys, i
        for path in ("subject.name", "subject.dob", "subject.nhs_number", "subject.address",
                     "subject.postcode", "subject.school_urn"):  # fmt: skip
            if path not in granted or granted[path] is not None:
                assert not any(v in text for v in _raw(subject, path)), (i, path)


def _floats(value: object) -> list[float]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [f for v in value.values() for f in _floats(v)]
    if isinstance(value, list | tuple):
        return [f for v in value for f in _floats(v)]
    return []


@settings(max_examples=100, deadline=None)
@given(grant=grants())
def test_a_view_holds_no_float_so_the_worker_seals_it_with_payload_json(
    grant: tuple[ContactEvent, Decision],
) -> None:
    """payload_json's precondition, for every field and transform a decision can grant."""
    ev, decision = grant
    view = redact(ev, decision, pseudonym_key=KEY)
    assert _floats(view) == []
    assert payload_json(view) == canonical_json(view)
