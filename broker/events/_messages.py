"""Payloads the broker sends to recipients and recipients send back (all sealed on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
)

from broker.events._identifiers import holds_nhs_or_telephone_number
from broker.events._model import CANONICAL_UUID_PATTERN, iso_datetime_text

# ISO 8601 text, as the schemas say: pydantic alone would read a number as seconds since 1970.
_Time = Annotated[datetime, BeforeValidator(iso_datetime_text)]
_AwareTime = Annotated[AwareDatetime, BeforeValidator(iso_datetime_text)]


# What the broker records in place of an acknowledgement's ``by`` or ``purpose`` that held a
# number (or a purpose no bundle clause has): the opening is still recorded, the value never.
# The parentheses keep it apart from every id the pattern takes.
_WITHHELD = "(withheld)"


def _not_a_number(value: str, info: ValidationInfo) -> str:
    # The message never quotes the value: validation errors reach logs and the CLI.
    if holds_nhs_or_telephone_number(value):
        if isinstance(info.context, dict) and info.context.get("withhold_numbers"):
            return _WITHHELD
        raise ValueError("an identifier, never an NHS or telephone number")
    return value


# Who opened a record, as the disclosure log names them to every child's SAR: a pattern keeps
# out free text, and the number check keeps out a child's NHS number or a telephone number
# typed where a staff id belongs (the pattern alone takes 9997672380).
_OpenedBy = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$",
        description="A staff or system id: who opened the record. Also checked beyond this "
        "schema: it holds no NHS or telephone number. Refused: 10 digits in a row unless "
        "from 00 (9997672380), 11, 13 or more, 12 from 0 or 44 (12 otherwise, an NHS "
        "smartcard id such as 555123456789, is taken), and digit groups joined by - . / : _ "
        "that make an NHS number as printed (943-476-5919), a telephone number "
        "(07700.900123) or a valid NHS or CHI number (docs/governance.md, review "
        "references); the broker records the opening with such an id withheld.",
    ),
    AfterValidator(_not_a_number),
]


# What a record was opened for, as the SAR shows it: the pattern keeps out free text, the
# number check a telephone number (call_mum_07700900123) or an NHS number (9997672380).
_OpenedFor = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9][a-z0-9_]{0,63}$",
        description="A purpose of the policy bundle in force (its clauses' purposes), for "
        "which the record was opened, or 'unstated' / 'unknown' when the client knows none. "
        "Also checked beyond this schema: it holds no NHS or telephone number; the broker "
        "records the opening with a purpose that does, or that is none of those, withheld.",
    ),
    AfterValidator(_not_a_number),
]


class _Msg(BaseModel):
    # A delivery's view holds names and NHS numbers: no ValidationError quotes its input.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


_VIEW = (
    "The event as this recipient may see it. Always: event_id, type, sender, occurred_at (as "
    "in contact-event.v1). Then only the event fields the agreement shares, under their "
    "contact-event.v1 names (reference, need_level, child_present, summary, child_voice, "
    "categories, location, service, outcome), and subjects: the people shared, in the event's "
    "order, each holding only the fields shared of it. A transformed field travels under the "
    "transform's name instead, never the original's: age_band, year_of_birth, "
    "postcode_district, initials, <key>_pseudonym (nhs_number_pseudonym, name_pseudonym, "
    "dob_pseudonym, reference_pseudonym: a keyed hash, different for each recipient). A field "
    "not shared is absent; one shared that the event left empty is null. Every delivery also "
    "carries view.sharing, the decision it was made under: outcome ('shared' or "
    "'shared_override'), recipient, agreement_id, agreement_version, clause_ids (a list), "
    "purpose, lawful_basis (article6, and article9/article10 when the agreement names them), "
    "policy_version and review_required (true when a safeguarding override shared it)."
)


class Delivery(_Msg):
    """A redacted view of one contact event for one recipient (``shared-record.v1``).

    ``view`` holds exactly the fields the recipient's agreement names, after restrictions and
    transforms; the rest says on what basis it was shared, so the recipient can record it.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        hide_input_in_errors=True,
        json_schema_extra={
            "$id": "https://accord.example/schemas/shared-record.v1.json",
            "title": "Accord shared record v1",
        },
    )

    kind: Literal["delivery"] = "delivery"
    event_id: str
    recipient: str
    outcome: Literal["shared", "shared_override"]
    clauses: tuple[str, ...]
    agreements: tuple[str, ...]
    purpose: str
    lawful_basis: dict[str, str]
    policy_version: str
    decided_at: _Time
    view: dict[str, Any] = Field(description=_VIEW)


class WithdrawalNotice(_Msg):
    """Consent withdrawn: stop processing what these earlier deliveries held.

    Schema ``consent-withdrawn-notice.v1``. It names the earlier deliveries by event id,
    never the person.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        hide_input_in_errors=True,
        json_schema_extra={
            "$id": "https://accord.example/schemas/consent-withdrawn-notice.v1.json",
            "title": "Accord consent-withdrawn notice v1",
        },
    )

    kind: Literal["consent_withdrawn"] = "consent_withdrawn"
    notice_id: str
    recipient: str
    event_ids: tuple[str, ...]
    purposes: tuple[str, ...]
    withdrawn_at: _Time


class AccessAck(_Msg):
    """A recipient opened or viewed a delivered record (``access-ack.v1``)."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        hide_input_in_errors=True,
        json_schema_extra={
            "$id": "https://accord.example/schemas/access-ack.v1.json",
            "title": "Accord access acknowledgement v1",
        },
    )

    # Identifiers, not free text: all three land in the append-only audit log, which must
    # never hold what a practitioner might type about a child. A delivered record's event id
    # is its contact event's, a UUID in its one spelling (contact-event.v1).
    event_id: str = Field(pattern=CANONICAL_UUID_PATTERN)
    recipient: str
    by: _OpenedBy
    # Shown in the child's SAR beside "opened by": the worker also holds it to the purposes
    # of the policy bundle in force, or 'unstated' / 'unknown' (broker.pipeline._access).
    purpose: _OpenedFor
    # With its zone: a governance report sorts openings among decisions (all in UTC).
    at: _AwareTime

    WITHHELD: ClassVar[str] = _WITHHELD

    @classmethod
    def as_recorded(cls, payload: bytes | str) -> AccessAck:
        """The acknowledgement as the broker records it: ``by`` or ``purpose`` holding an NHS
        or telephone number reads as ``WITHHELD`` instead of failing, so that the opening is
        still recorded (a client that sent it is told nothing: the SDK refuses such values
        itself). Anything else invalid still raises ``ValidationError``."""
        return cls.model_validate_json(payload, context={"withhold_numbers": True})
