"""What the hot path writes by hand is what the models write, byte for byte.

``DecidedData.jcs()`` stands in for ``rfc8785.dumps(decision.model_dump(mode="json", ...))``
on the worker's hot path, and the audit chain takes its text as written; so it is held to
that here, over arbitrary decisions, awkward strings and numbers included. A delivery's
payload, built without the ``Delivery`` model, must be that model's dump.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
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
# Small indexes, anything up to well beyond JCS's exact range, and that range's edges.
_EDGES = [2**53 - 1, -(2**53 - 1), 2**53, -(2**53), 2**63]
_ints = st.integers(0, 50) | st.integers(-(2**60), 2**60) | st.sampled_from(_EDGES)


def decisions(text: st.SearchStrategy[str]) -> st.SearchStrategy[Decision]:
    """Arbitrary decisions, every string drawn from ``text``."""
    basis = st.builds(
        LawfulBasis, article6=text, article9=st.none() | text, article10=st.none() | text
    )
    refs = st.builds(
        ClauseRef,
        agreement_id=text,
        agreement_version=text,
        clause_id=text,
        purpose=text,
        lawful_basis=basis,
        consent=st.sampled_from(CONSENT_RULES),
    )
    scopes = st.builds(
        SubjectScope,
        subject=_ints,
        fields=st.tuples(text),
        transforms=st.dictionaries(text, text, max_size=2),
    )
    return st.builds(
        Decision,
        event_id=st.uuids(),
        event_type=text,
        sender=text,
        recipient=text,
        recipient_kind=text,
        outcome=st.sampled_from(["shared", "shared_override", "not_shared"]),
        reason=st.none() | st.sampled_from([*REASON_PRECEDENCE, "recipient-key-unavailable"]),
        clause_ids=st.lists(text, max_size=3).map(tuple),
        agreement_id=st.none() | text,
        agreement_version=st.none() | text,
        purpose=st.none() | text,
        lawful_basis=st.none() | basis,
        consent=st.sampled_from(["given", "refused", "withdrawn", "missing"]),
        consent_rule=st.none() | st.sampled_from(CONSENT_RULES),
        fields_shared=st.lists(text, max_size=3).map(tuple),
        fields_withheld=st.lists(text, max_size=3).map(tuple),
        restrictions=st.lists(text, max_size=2).map(tuple),
        transforms=st.dictionaries(text, text, max_size=3),
        subjects=st.lists(_ints, max_size=3).map(tuple),
        subject_roles=st.dictionaries(text, _ints, max_size=3),
        subject_scopes=st.just(()) | st.lists(scopes, min_size=1, max_size=2).map(tuple),
        review_required=st.booleans(),
        override_grounds=st.none() | st.sampled_from(["safeguarding_concern", "need_level_4"]),
        grounds=st.lists(refs, max_size=3).map(tuple),
        decided_at=st.datetimes(timezones=st.just(UTC))
        | st.datetimes(timezones=st.timezones())
        | st.datetimes(),  # naive: the engine never makes one, but the model accepts it
        policy_version=text,
    )


_decisions = decisions(st.text(_chars, max_size=8))
# Lone surrogates too, which no UTF-8 can hold (and pydantic's JSON dump rewrites in keys).
_odd_decisions = decisions(  # joined by hand: st.text would merge the alphabets and drop them
    st.lists(_chars | st.sampled_from("\ud800\udbff\udc00\udfff"), max_size=8).map("".join)
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


def _record_hash(parsed: dict[str, Any]) -> str:
    # schemas/audit-chain.md: SHA-256 over the domain label and the JCS of every other member.
    body = {k: v for k, v in parsed.items() if k != "hash"}
    return hashlib.sha256(b"accord/audit/v1\x00" + rfc8785.dumps(body)).hexdigest()


def _writers(at: datetime) -> tuple[ChainWriter, ChainWriter]:
    prev = hashlib.sha256(b"an earlier record").hexdigest()
    return tuple(  # type: ignore[return-value]
        ChainWriter("worker:w1", clock=lambda: at, next_seq=41, prev_hash=prev) for _ in range(2)
    )


@given(
    decision=_odd_decisions,
    party=st.text(_chars, max_size=8),
    keys=st.lists(st.text("0123456789abcdef", min_size=32, max_size=32), max_size=3),
    at=st.datetimes(timezones=st.just(UTC)),
)
def test_a_decided_record_is_byte_for_byte_what_the_general_path_writes(
    decision: Decision, party: str, keys: list[str], at: datetime
) -> None:
    """The whole record, hash and chain included, against the path every other record takes
    (held to RFC 8785 itself by tests/unit/audit/test_jcs.py): the same bytes, or the same
    refusal with the chain left as it was."""
    fast, general = _writers(at)
    event_id = str(decision.event_id)
    kwargs: dict[str, Any] = {"event_id": event_id, "party": party, "subject_keys": keys}
    dumped = decision.model_dump(mode="json", exclude=EXCLUDE)
    try:
        expected = general.append_encoded(AuditKind.DECIDED, data=dumped, **kwargs)
    except ValueError:  # a number JCS cannot write, or a lone surrogate
        before = (fast.next_seq, fast.prev_hash)
        with pytest.raises(ValueError, match=r"RFC 8785|surrogates not allowed"):
            fast.append_encoded(AuditKind.DECIDED, data=DecidedData(decision), **kwargs)
        assert (fast.next_seq, fast.prev_hash) == before == (general.next_seq, general.prev_hash)
        return
    assert fast.append_encoded(AuditKind.DECIDED, data=DecidedData(decision), **kwargs) == expected
    parsed = json.loads(expected)
    assert expected == rfc8785.dumps(parsed)
    assert parsed["data"] == dumped
    assert parsed["hash"] == _record_hash(parsed) == fast.prev_hash == general.prev_hash
    # The next record chains on from identical state.
    after = {"event_id": event_id, "party": party}
    assert fast.append_encoded(AuditKind.DELIVERED, **after) == general.append_encoded(
        AuditKind.DELIVERED, **after
    )


@pytest.mark.parametrize("field", ["purpose", "policy_version", "clause_ids", "transforms"])
def test_a_lone_surrogate_is_treated_alike_by_both_paths(tmp_path: Path, field: str) -> None:
    """No UTF-8 holds one: in a value both paths refuse the record and leave the chain as it
    was; in a key pydantic's dump has already replaced it, and both write that."""
    [first, *_] = load(tmp_path).decide(event(), at=AT)
    odd = "a\ud800b"
    value: Any = {"clause_ids": (odd,), "transforms": {odd: "pseudonym"}}.get(field, odd)
    moved = first.model_copy(update={field: value})
    dumped = moved.model_dump(mode="json", exclude=EXCLUDE)
    fast, general = _writers(AT)
    if field == "transforms":
        expected = general.append_encoded(AuditKind.DECIDED, data=dumped)
        assert fast.append_encoded(AuditKind.DECIDED, data=DecidedData(moved)) == expected
        return
    before = (fast.next_seq, fast.prev_hash)
    with pytest.raises(UnicodeEncodeError):
        general.append_encoded(AuditKind.DECIDED, data=dumped)
    with pytest.raises(UnicodeEncodeError):
        fast.append_encoded(AuditKind.DECIDED, data=DecidedData(moved))
    assert (fast.next_seq, fast.prev_hash) == (general.next_seq, general.prev_hash) == before


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
