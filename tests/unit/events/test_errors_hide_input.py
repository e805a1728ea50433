"""A pydantic ValidationError of an event model never carries what was given: an integrator
who validates a model directly and logs the error must not log a child's name or NHS
number (docs/sdk.md, *Errors*). And validating a contact event without a clock is a
``UsageError`` that says how it is done, not a bare ``RuntimeError``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pydantic
import pytest
from pydantic import BaseModel

import broker.events._consent
import broker.events._messages
import broker.events._model
from broker.errors import AccordError, UsageError
from broker.events import (
    AccessAck,
    ConsentRecord,
    ConsentSubject,
    ContactEvent,
    Delivery,
    Safeguarding,
    Subject,
    WithdrawalNotice,
    parse_event,
)
from tests.unit.policy.kit import AT, event_dict, subject

# Synthetic, and distinctive enough that finding one anywhere in an error means it leaked:
# a 999 NHS number whose check digit is wrong, a name, a postcode and a note.
NUMBER = "9990109282"
NAME = "Zebulonqx"
POSTCODE = "DY4 7QX"
NOTE = "Quillonby"
MARKS = (NUMBER, NAME, POSTCODE, NOTE)
CTX = {"now": AT}


def _child(**fields: Any) -> dict[str, Any]:
    return subject("child", given_name=NAME, postcode=POSTCODE, **fields)


def _consent(**fields: Any) -> dict[str, Any]:
    return {
        "subject": {"given_name": NAME, "family_name": "Hollis", "dob": "2019-03-02"},
        "state": "given",
        "purposes": ["early_help"],
        "recipients": ["*"],
        "recorded_by": "sandwell-coord",
        "recorded_at": "2026-11-20T09:00:00Z",
        **fields,
    }


def _delivery(**fields: Any) -> dict[str, Any]:
    return {
        "event_id": "5b0f6c1e-0d0a-4c1e-9d55-0a7c2b1e0001",
        "recipient": "hub-a",
        "outcome": "shared",
        "clauses": ["c1"],
        "agreements": ["a1"],
        "purpose": "early_help",
        "lawful_basis": {"article6": "public_task"},
        "policy_version": "v1",
        "decided_at": "2026-11-21T22:41:00Z",
        "view": {"subjects": [{"given_name": NAME}]},
        **fields,
    }


# Each model, and a call that fails with every mark in its input (bad values beside them).
CASES: dict[str, Callable[[], object]] = {
    "ContactEvent": lambda: ContactEvent.model_validate(
        event_dict(subjects=[_child(nhs_number=NUMBER)], summary=NOTE), context=CTX
    ),
    "ContactEvent (JSON)": lambda: ContactEvent.model_validate_json(
        f'{{"summary": "{NOTE} {NAME} {NUMBER} {POSTCODE}", "need_level": "x"}}', context=CTX
    ),
    "Subject": lambda: Subject.model_validate(
        _child(nhs_number=NUMBER, family_name=NOTE), context=CTX
    ),
    "Safeguarding": lambda: Safeguarding.model_validate(
        {"concern": NAME, "justification": f"{NOTE} {NUMBER} {POSTCODE}" * 200}
    ),
    "ConsentSubject": lambda: ConsentSubject.model_validate(
        {"nhs_number": NUMBER, "given_name": NAME, "family_name": NOTE, "postcode": POSTCODE}
    ),
    "ConsentRecord": lambda: ConsentRecord.model_validate(
        _consent(
            subject={"nhs_number": NUMBER, "given_name": NAME, "postcode": POSTCODE},
            purposes=[NOTE + " !"],
        ),
        context=CTX,
    ),
    "AccessAck": lambda: AccessAck.model_validate(
        {
            "event_id": NAME,
            "recipient": "hub-a",
            "by": f"{NAME} {POSTCODE}",
            "purpose": f"call_{NUMBER}",
            "at": NOTE,
        }
    ),
    "Delivery": lambda: Delivery.model_validate(
        _delivery(view=[NAME, NUMBER, POSTCODE, NOTE], outcome=NOTE)
    ),
    "WithdrawalNotice": lambda: WithdrawalNotice.model_validate(
        {
            "notice_id": [NAME],
            "recipient": [POSTCODE],
            "event_ids": NUMBER,
            "purposes": [NOTE, 1],
            "withdrawn_at": NOTE,
        }
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_validation_error_carries_no_input_value(name: str) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        CASES[name]()
    shown = str(info.value) + repr(info.value)
    assert info.value.error_count() >= 1
    for mark in MARKS:
        assert mark not in shown, (name, mark, shown)


def _event_models() -> set[type[BaseModel]]:
    return {
        cls
        for module in (broker.events._model, broker.events._consent, broker.events._messages)
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, BaseModel) and cls.__module__ == module.__name__
    }


def test_every_event_model_hides_its_input_in_errors() -> None:
    """A model added later is held to it too: its input may hold personal data."""
    models = _event_models()
    assert {ContactEvent, Subject, Safeguarding, ConsentRecord, ConsentSubject} <= models
    assert {AccessAck, Delivery, WithdrawalNotice} <= models
    shown = {m.__name__ for m in models if m.model_config.get("hide_input_in_errors") is not True}
    assert shown == set()


def test_a_contact_event_made_without_a_clock_is_a_usage_error_naming_parse_event() -> None:
    for make in (
        lambda: ContactEvent(**event_dict()),
        lambda: ContactEvent.model_validate(event_dict()),
        lambda: Subject.model_validate(subject("child")),
    ):
        with pytest.raises(UsageError) as info:
            make()
        assert isinstance(info.value, AccordError)
        assert "broker.events.parse_event(data, now=" in str(info.value)
    # The way the message points to works.
    assert parse_event(event_dict(), now=AT).sender == "wmp"
