"""What the hot path writes by hand is what the models write, byte for byte.

``DecidedData.jcs()`` stands in for ``rfc8785.dumps(decision.model_dump(mode="json", ...))``
on the worker's hot path, and the audit chain takes its text as written; so it is held to
that here, over arbitrary decisions, awkward strings and numbers included. A delivery's
payload, built without the ``Delivery`` model, must be that model's dump.
"""

from __future__ import annotations

import json
from datetime import UTC, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from broker._canonical import canonical_json
from broker.audit import AuditKind, AuditRecord, ChainWriter
from broker.events import Delivery
from broker.pipeline._encoding import DecidedData, delivery_payload
from broker.policy import ClauseRef, Decision, LawfulBasis, redact
from broker.policy._decision import REASON_PRECEDENCE, SubjectScope
from broker.policy._model import CONSENT_RULES
from tests.unit.policy.kit import AT, event, load

EXCLUDE = {"event_id", "recipient"}

# As tests/unit/audit/test_jcs.py: characters JSON encoders disagree on, and beyond the BMP.
_AWKWARD = '\x00\x01\x08\x09\x0a\x0c\x0d\x1f"\\/\x7f\u2028\u2029\ue000\uffff\U00010000\U0001f600'
_chars = st.sampled_from(_AWKWARD) | st.characters(exclude_categories=("Cs",))
_text = st.text(_chars, max_size=8)
_ints = st.integers(0, 50) | st.integers(-(2**60), 2**60)
_basis = st.builds(
    LawfulBasis, article6=_text, article9=st.none() | _text, article10=st.none() | _text
)
_refs = st.builds(
    ClauseRef,
    agreement_id=_text,
    agreement_version=_text,
    clause_id=_text,
    purpose=_text,
    lawful_basis=_basis,
    consent=st.sampled_from(CONSENT_RULES),
)
_scopes = st.builds(
    SubjectScope,
    subject=_ints,
    fields=st.tuples(_text),
    transforms=st.dictionaries(_text, _text, max_size=2),
)
_decisions = st.builds(
    Decision,
    event_id=st.uuids(),
    event_type=_text,
    sender=_text,
    recipient=_text,
    recipient_kind=_text,
    outcome=st.sampled_from(["shared", "shared_override", "not_shared"]),
    reason=st.none() | st.sampled_from([*REASON_PRECEDENCE, "recipient-key-unavailable"]),
    clause_ids=st.lists(_text, max_size=3).map(tuple),
    agreement_id=st.none() | _text,
    agreement_version=st.none() | _text,
    purpose=st.none() | _text,
    lawful_basis=st.none() | _basis,
    consent=st.sampled_from(["given", "refused", "withdrawn", "missing"]),
    consent_rule=st.none() | st.sampled_from(CONSENT_RULES),
    fields_shared=st.lists(_text, max_size=3).map(tuple),
    fields_withheld=st.lists(_text, max_size=3).map(tuple),
    restrictions=st.lists(_text, max_size=2).map(tuple),
    transforms=st.dictionaries(_text, _text, max_size=3),
    subjects=st.lists(_ints, max_size=3).map(tuple),
    subject_roles=st.dictionaries(_text, _ints, max_size=3),
    subject_scopes=st.just(()) | st.lists(_scopes, min_size=1, max_size=2).map(tuple),
    review_required=st.booleans(),
    override_grounds=st.none() | st.sampled_from(["safeguarding_concern", "need_level_4"]),
    grounds=st.lists(_refs, max_size=3).map(tuple),
    decided_at=st.datetimes(timezones=st.just(UTC)) | st.datetimes(timezones=st.timezones()),
    policy_version=_text,
)


def _spec(decision: Decision) -> str | None:
    """What the general path writes, or None where it refuses (a number JCS cannot write)."""
    try:
        return rfc8785.dumps(decision.model_dump(mode="json", exclude=EXCLUDE)).decode()
    except rfc8785.CanonicalizationError:
        return None


@given(decision=_decisions)
def test_a_decision_writes_itself_as_rfc8785_of_its_dump(decision: Decision) -> None:
    data = DecidedData(decision)
    expected = _spec(decision)
    if expected is None:
        with pytest.raises(ValueError, match="RFC 8785"):
            data.jcs()
    else:
        assert data.jcs() == expected
        assert data.jcs() == expected  # again, from the caches
    assert dict(data) == decision.model_dump(mode="json", exclude=EXCLUDE)
    assert (data["outcome"], data["reason"]) == (decision.outcome, decision.reason)


def test_the_bundles_decisions_make_the_same_records_as_the_general_path(tmp_path: Path) -> None:
    decisions = load(tmp_path).decide(event(), at=AT)
    assert decisions
    for decision in decisions:
        fast, general = (ChainWriter("worker:w1", clock=lambda: AT) for _ in range(2))
        dumped = decision.model_dump(mode="json", exclude=EXCLUDE)
        one = fast.append_encoded(AuditKind.DECIDED, party="x", data=DecidedData(decision))
        two = general.append_encoded(AuditKind.DECIDED, party="x", data=dumped)
        assert one == two
        assert AuditRecord.model_validate_json(one).data == dumped
        assert one == rfc8785.dumps(json.loads(one))


def test_a_time_is_not_taken_from_the_cache_for_an_equal_time_in_another_zone(
    tmp_path: Path,
) -> None:
    [first, *_] = load(tmp_path).decide(event(), at=AT)
    elsewhere = AT.astimezone(timezone(timedelta(hours=1)))
    assert elsewhere == AT
    for at in (AT, elsewhere, AT):
        moved = first.model_copy(update={"decided_at": at})
        assert DecidedData(moved).jcs() == _spec(moved)


def _delivery(decision: Decision, view: dict[str, Any]) -> Delivery:
    return Delivery(
        event_id=str(decision.event_id),
        recipient=decision.recipient,
        outcome="shared_override" if decision.outcome == "shared_override" else "shared",
        clauses=decision.clause_ids,
        agreements=tuple(sorted({g.agreement_id for g in decision.grounds})),
        purpose=decision.purpose or "",
        lawful_basis=(
            decision.lawful_basis.model_dump(exclude_none=True) if decision.lawful_basis else {}
        ),
        policy_version=decision.policy_version,
        decided_at=decision.decided_at,
        view=view,
    )


@given(decision=_decisions.filter(lambda d: d.shares))
def test_a_delivery_payload_is_the_delivery_messages_dump(decision: Decision) -> None:
    view = {"event_id": str(decision.event_id), "subjects": [{"role": "child"}]}
    payload = delivery_payload(str(decision.event_id), decision, view)
    message = _delivery(decision, view)
    assert canonical_json(payload) == canonical_json(message.model_dump(mode="json"))
    Delivery.model_validate(payload)  # what a recipient checks it against


def test_the_bundles_deliveries_are_the_delivery_messages_dump(tmp_path: Path) -> None:
    ev = event()
    shared = [d for d in load(tmp_path).decide(ev, at=AT) if d.shares]
    assert shared
    for decision in shared:
        view = redact(ev, decision, pseudonym_key=b"k" * 32)
        payload = delivery_payload(str(ev.event_id), decision, view)
        expected = _delivery(decision, view).model_dump(mode="json")
        assert canonical_json(payload) == canonical_json(expected)
