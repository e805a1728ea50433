"""The schemas of what the broker sends recipients and recipients send back agree with the
models that read them: each sample the model takes, the schema takes, and each it refuses,
the schema refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel, ValidationError

from broker.events import AccessAck, Delivery, WithdrawalNotice
from broker.events.schema import SCHEMA_FILES, schemas
from broker.topics import SCHEMA_ACCESS, SCHEMA_NOTICE, SCHEMA_SHARED

ID = "5b0f6c1e-0d0a-4c1e-9d55-0a7c2b1e0001"
ACK = {"event_id": ID, "recipient": "cog-tipton", "by": "hub-a/duty-1",
       "purpose": "early_help", "at": "2026-11-22T09:00:00Z"}  # fmt: skip
DELIVERY = {
    "kind": "delivery", "event_id": ID, "recipient": "cog-tipton", "outcome": "shared",
    "clauses": ["sandwell-early-help/coord-to-hub"], "agreements": ["sandwell-early-help"],
    "purpose": "early_help", "lawful_basis": {"article6": "public_task"},
    "policy_version": "sha256:0f3a", "decided_at": "2026-11-22T08:00:00Z",
    "view": {"event_id": ID, "type": "police.domestic_incident"},
}  # fmt: skip
NOTICE = {"kind": "consent_withdrawn", "notice_id": "notice-5b0f6c1e", "recipient": "cog-tipton",
          "event_ids": [ID], "purposes": ["early_help"],
          "withdrawn_at": "2026-11-22T10:00:00Z"}  # fmt: skip

CASES: list[tuple[type[BaseModel], dict[str, Any], list[dict[str, Any]]]] = [
    (AccessAck, ACK, [
        {"event_id": ID.upper()}, {"event_id": "access:0001"}, {"by": "Amy Hollis"},
        {"purpose": "Early Help"}, {"at": 5}, {"note": "x"},
    ]),
    (Delivery, DELIVERY, [
        {"outcome": "not_shared"}, {"kind": "notice"}, {"clauses": "one"}, {"view": []},
        {"lawful_basis": {"article6": 6}}, {"decided_at": 1_800_000_000}, {"extra": 1},
    ]),
    (WithdrawalNotice, NOTICE, [
        {"kind": "delivery"}, {"event_ids": ID}, {"purposes": [1]}, {"withdrawn_at": None},
        {"withdrawn_at": 1_800_000_000},
        {"person": "x"},
    ]),
]  # fmt: skip


def _schema_for(model: type[BaseModel]) -> Draft202012Validator:
    [name] = [n for n, m in SCHEMA_FILES.items() if m is model]
    return Draft202012Validator(schemas()[name], format_checker=Draft202012Validator.FORMAT_CHECKER)


def test_each_wire_schema_name_has_its_schema_file() -> None:
    names = {n.removesuffix(".json") for n in SCHEMA_FILES}
    assert {SCHEMA_ACCESS, SCHEMA_SHARED, SCHEMA_NOTICE} <= names


@pytest.mark.parametrize(
    ("model", "sample", "_bad"), CASES, ids=lambda c: getattr(c, "__name__", "")
)
def test_a_valid_sample_passes_the_model_and_the_schema(
    model: type[BaseModel], sample: dict[str, Any], _bad: list[dict[str, Any]]
) -> None:
    model.model_validate(sample)
    assert not list(_schema_for(model).iter_errors(sample))


@pytest.mark.parametrize(
    ("model", "sample", "change"),
    [(m, s, c) for m, s, bad in CASES for c in bad],
    ids=lambda c: getattr(c, "__name__", None) or (str(c)[:40] if isinstance(c, dict) else ""),
)
def test_an_invalid_sample_fails_the_model_and_the_schema(
    model: type[BaseModel], sample: dict[str, Any], change: dict[str, Any]
) -> None:
    bad = {**sample, **change}
    with pytest.raises(ValidationError):
        model.model_validate_json(json.dumps(bad))
    assert list(_schema_for(model).iter_errors(bad))


@pytest.mark.parametrize(
    "by", ["9997672380", "943-476-5919", "hub-a/07700.900123", "020-7946-0000", "tel-07700900123"]
)
def test_an_ack_opened_by_an_nhs_or_telephone_number_is_refused_without_quoting_it(
    by: str,
) -> None:
    """The schema's pattern takes these; the model refuses them (its description says so)."""
    with pytest.raises(ValidationError) as refused:
        AccessAck.model_validate_json(json.dumps({**ACK, "by": by}))
    assert by not in str(refused.value.errors(include_input=False))
    assert "NHS" in _schema_for(AccessAck).schema["properties"]["by"]["description"]


@pytest.mark.parametrize("purpose", ["9997672380", "call_mum_07700900123", "nhs_943_476_5919"])
def test_an_ack_for_a_purpose_holding_an_nhs_or_telephone_number_is_refused(
    purpose: str,
) -> None:
    """The purpose is shown in the child's SAR beside the opening, as "opened by" is."""
    with pytest.raises(ValidationError) as refused:
        AccessAck.model_validate_json(json.dumps({**ACK, "purpose": purpose}))
    assert purpose not in str(refused.value.errors(include_input=False))


@pytest.mark.parametrize("by", ["hub-a/duty-1", "IG-2026-000123", "officer-7", "kim.ward"])
def test_an_ack_opened_by_a_staff_id_with_a_number_in_it_is_taken(by: str) -> None:
    assert AccessAck.model_validate({**ACK, "by": by}).by == by
