"""The contact event, version 1: what an agency tells Accord about a contact with a family.

Validation needs the current time (dates may not lie in the future beyond a small clock
skew), and the clock is injected: pass ``context={"now": <aware datetime>}`` to
``model_validate`` (``parse_event`` does). Validating without it (``ContactEvent(**data)``)
is a programming error and raises ``UsageError`` rather than silently reading the wall clock.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, timedelta, timezone
from typing import Annotated, Any, Final, Literal, get_args
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from broker.errors import UsageError
from broker.events._identifiers import normalise_nhs_number, normalise_postcode

__all__ = [
    "ALWAYS_TRAVELS",
    "CANONICAL_UUID_PATTERN",
    "CLOCK_SKEW",
    "EVENT_FIELD_PATHS",
    "EVENT_TYPES",
    "FIELD_PATHS",
    "REFERRAL_OUTCOMES",
    "ROLES",
    "SUBJECT_FIELD_PATHS",
    "ContactEvent",
    "EventId",
    "EventType",
    "NhsNumber",
    "PartyId",
    "Postcode",
    "ReferralOutcome",
    "Role",
    "Safeguarding",
    "Slug",
    "Subject",
    "is_canonical_uuid",
    "now_from",
]

EventType = Literal[
    "police.domestic_incident",
    "police.missing_episode",
    "police.child_concern",
    "health.ae_attendance",
    "health.health_visitor_concern",
    "health.midwife_concern",
    "health.gp_concern",
    "education.attendance_concern",
    "education.exclusion",
    "education.welfare_concern",
    "housing.eviction_risk",
    "social_care.contact",
    "voluntary.concern",
    # The desk's own events (docs/desk.md): the co-ordinating team refers a child to a hub,
    # the hub reports what came of it. Decided by the policy engine like any other event.
    "coordination.referral",
    "coordination.referral_outcome",
]
ReferralOutcome = Literal["support_offered", "declined", "closed"]
Role = Literal["child", "parent", "carer", "sibling", "other_adult"]

EVENT_TYPES: Final[tuple[str, ...]] = get_args(EventType)
ROLES: Final[tuple[str, ...]] = get_args(Role)
REFERRAL_OUTCOMES: Final[tuple[str, ...]] = get_args(ReferralOutcome)

# The closed set of field paths a policy may name (docs/policy-language.md, Clause keys).
# Order is the canonical order in which decisions list fields.
SUBJECT_FIELD_PATHS: Final[tuple[str, ...]] = (
    "subject.name",
    "subject.dob",
    "subject.nhs_number",
    "subject.address",
    "subject.postcode",
    "subject.school_urn",
    "subject.role",
)
EVENT_FIELD_PATHS: Final[tuple[str, ...]] = (
    "event.type",
    "event.occurred_at",
    "event.reference",
    "event.need_level",
    "event.child_present",
    "event.summary",
    "event.child_voice",
    "event.categories",
    "event.location",
    "event.service",
    "event.outcome",
)
FIELD_PATHS: Final[tuple[str, ...]] = SUBJECT_FIELD_PATHS + EVENT_FIELD_PATHS
ALWAYS_TRAVELS: Final[tuple[str, ...]] = ("event_id", "type", "sender", "occurred_at")

# Agency clocks drift; an event stamped a few minutes ahead of ours is not an error.
CLOCK_SKEW: Final = timedelta(minutes=5)
EARLIEST_DOB: Final = date(1900, 1, 1)
# British Summer Time is UTC+1, and no day in England begins before the day at that offset:
# a date of birth is a day in England, judged against it with no time-zone database.
_UK_LATEST: Final = timezone(timedelta(hours=1))


def latest_day(at: datetime) -> date:
    """The latest calendar day it can be at ``at`` (and the clock skew) for whoever wrote it:
    in the instant's own offset, or in England. A baby born at 00:30 BST on 11 June is born
    on a day that UTC reaches an hour later: a referral made at once is not dated before the
    birth."""
    try:
        t = at + CLOCK_SKEW
        return max(t.date(), t.astimezone(_UK_LATEST).date())
    except OverflowError:  # within an hour of the end of year 9999: no later day exists
        return date.max


Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
PartyId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]


def _nhs_number(value: str, info: ValidationInfo) -> str:
    # Parsing what comes in gives a context; reading back what was filed (worker state) does
    # not, and a consent record filed before placeholders were refused must still load.
    return normalise_nhs_number(value, allow_placeholder=not isinstance(info.context, dict))


_ISO_DATE_START = re.compile(r"\s*\d{4}-\d{2}-\d{2}")


def iso_text(value: Any) -> Any:
    """Refuse a number, or text that is not an ISO 8601 date, where a date or a time is due.

    pydantic reads a number, or text that spells one ("20261120", "2.026112E+07"), as
    seconds since 1970, so a compact date from an export would become 1970-08-23 without a
    word, and a withdrawal so dated would be older than the consent it withdraws. The schema
    says ISO 8601 text: so text must start with the date, year first.
    """
    if isinstance(value, int | float) or (
        isinstance(value, str) and _ISO_DATE_START.match(value) is None
    ):
        raise ValueError("must be an ISO 8601 date or date-time (2026-11-21T22:40:00Z)")
    return value


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def iso_date_text(value: Any) -> Any:
    """A date where a date is due: ``2016-03-02``, not a date-time, as the schema says.

    pydantic also takes a date-time at midnight UTC ("2018-05-14T00:00:00Z") as a date: an
    export that writes one has a date-time column where a date belongs, and another such
    row, at 01:00 or at +01:00, would be refused, or read as another day.
    """
    if isinstance(value, datetime) or (
        not isinstance(value, date) and not (isinstance(value, str) and _ISO_DATE.fullmatch(value))
    ):
        raise ValueError("must be an ISO 8601 date, year first (2016-03-02)")
    return value


def iso_datetime_text(value: Any) -> Any:
    """``iso_text`` where a date-time is due, said so."""
    try:
        return iso_text(value)
    except ValueError:
        raise ValueError("must be an ISO 8601 date-time (2026-11-21T22:40:00Z)") from None


IsoDatetime = Annotated[datetime, BeforeValidator(iso_datetime_text)]
IsoDate = Annotated[date, BeforeValidator(iso_date_text)]

#: An event id's one spelling: a UUID's canonical text, lowercase and hyphenated (RFC 9562),
#: as ``str(uuid.uuid4())`` writes it.
CANONICAL_UUID_PATTERN: Final = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_CANONICAL_UUID = re.compile(CANONICAL_UUID_PATTERN)


def is_canonical_uuid(value: object) -> bool:
    """Whether ``value`` is a UUID's text in its one spelling, lowercase and hyphenated."""
    return isinstance(value, str) and _CANONICAL_UUID.match(value) is not None


def canonical_uuid_text(value: Any) -> Any:
    """Refuse any other spelling of a UUID (upper case, no hyphens, braces, ``urn:uuid:``).

    Event ids are compared byte for byte: in the envelope, by the replay guard, in the audit
    log. Were ``ABC…`` read as ``abc…``, one event could be sent under two ids, each decided;
    and a receipt would name an id the sender never wrote. So the one spelling is required,
    never made up for.
    """
    if isinstance(value, UUID):
        return value
    if not is_canonical_uuid(value):
        raise ValueError("must be a UUID in lowercase hyphenated form (8-4-4-4-12 hex digits)")
    return value


EventId = Annotated[
    UUID,
    BeforeValidator(canonical_uuid_text),
    WithJsonSchema({"type": "string", "format": "uuid", "pattern": CANONICAL_UUID_PATTERN}),
]
_NHS_SPELLINGS = (
    "Ten digits whose last is the modulus-11 check digit of the first nine. Whitespace and "
    "hyphens anywhere are taken and dropped (943 476 5919 and 943-476-5919 are 9434765919, the "
    "form stored and shared); any other character (943.476.5919), other than ten digits left, "
    "or a wrong check digit is refused, as is one digit ten times (a record system's "
    "placeholder for 'not known': leave the field out)."
)
NhsNumber = Annotated[str, AfterValidator(_nhs_number), Field(description=_NHS_SPELLINGS)]
Postcode = Annotated[str, StringConstraints(max_length=10), AfterValidator(normalise_postcode)]
# A name is stored stripped, so one of spaces only is refused; the pattern (a character that
# str.strip keeps: ECMA-262's \s, the JSON Schema's, lacks \x1c-\x1f and \x85) says so in
# the JSON Schema too, where minLength alone would let "  " through.
_NAME_PATTERN = r"[^\s\x1c-\x1f\x85]"
_Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=_NAME_PATTERN),
]
_Text = Annotated[str, StringConstraints(max_length=4000)]
_Short = Annotated[str, StringConstraints(max_length=500)]
_Urn = Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]
_Reference = Annotated[str, StringConstraints(min_length=1, max_length=100)]


def now_from(info: ValidationInfo) -> datetime:
    """The injected clock; validating without one is a bug in the caller, not bad data.

    A ``UsageError``, deliberately not a ``ValueError``: pydantic would report that as bad
    input.
    """
    ctx = info.context
    now = ctx.get("now") if isinstance(ctx, dict) else None
    if not isinstance(now, datetime) or now.tzinfo is None:
        # ContactEvent(**data) lands here: say the documented way in.
        raise UsageError(
            "a contact event is validated against a clock: use "
            "broker.events.parse_event(data, now=<timezone-aware datetime>), or pass "
            "context={'now': <timezone-aware datetime>} to model_validate"
        )
    return now


def _require_aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must include a timezone (e.g. a trailing Z)")
    return value


class _Frozen(BaseModel):
    # hide_input_in_errors: a ValidationError's text would otherwise quote what was given (an
    # NHS number, the whole subjects list), and an integrator validating a model directly
    # may log it. Every model of broker.events sets it (tests/unit/events).
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


# Characters that show nothing on their own: white space, controls, format characters
# (zero-width space, BOM, bidi marks: category Cf), unassigned and private-use points,
# combining marks with nothing to combine with, and the blank fillers some keyboards and
# forms emit. A justification of these alone looks empty to whoever reads it.
_INVISIBLE_CATEGORIES: Final = frozenset(
    {"Cc", "Cf", "Cn", "Co", "Cs", "Zs", "Zl", "Zp", "Mn", "Me"}
)
_BLANK_FILLERS: Final = frozenset("\u115f\u1160\u2800\u3164\uffa0")


def _visible(text: str | None) -> bool:
    """Whether ``text`` holds a character a reader would see."""
    return text is not None and any(
        not ch.isspace()
        and ch not in _BLANK_FILLERS
        and unicodedata.category(ch) not in _INVISIBLE_CATEGORIES
        for ch in text
    )


class Safeguarding(_Frozen):
    """Whether the sender has a safeguarding concern, and why (needed for an override)."""

    concern: StrictBool = False
    justification: Annotated[str, StringConstraints(max_length=2000)] | None = None

    @property
    def justified(self) -> bool:
        """A concern with a justification someone can read: what overrides consent under
        ``required_unless_safeguarding`` (docs/policy-language.md). One with none, a blank
        one, or one of invisible characters only is a valid event that does not override."""
        return self.concern and _visible(self.justification)

    @property
    def readable_justification(self) -> str | None:
        """The justification, or None when it holds no character a reader would see."""
        return self.justification if _visible(self.justification) else None

    @property
    def unjustified(self) -> bool:
        """A concern flagged without a readable justification: it will not override consent,
        which the SDK warns the sender of rather than let it be set aside unseen."""
        return self.concern and not _visible(self.justification)


class Subject(_Frozen):
    """A person the event is about. Needs an NHS number or a given and family name."""

    role: Role
    nhs_number: NhsNumber | None = None
    given_name: _Name | None = None
    family_name: _Name | None = None
    dob: IsoDate | None = None
    address: _Short | None = None
    postcode: Postcode | None = None
    school_urn: _Urn | None = None

    @field_validator("dob")
    @classmethod
    def _dob_in_range(cls, value: date | None, info: ValidationInfo) -> date | None:
        if value is None:
            return None
        if value < EARLIEST_DOB:
            raise ValueError("is before 1900")
        if value > latest_day(now_from(info)):
            raise ValueError("is in the future")
        return value

    @model_validator(mode="after")
    def _identifiable(self) -> Subject:
        if self.nhs_number is None and (self.given_name is None or self.family_name is None):
            raise ValueError("needs nhs_number, or given_name and family_name")
        return self


class ContactEvent(_Frozen):
    """Contact event v1, what an agency publishes. Field names are the JSON keys."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        hide_input_in_errors=True,
        json_schema_extra={
            "$id": "https://accord.example/schemas/contact-event.v1.json",
            "title": "Accord contact event v1",
        },
    )

    event_id: EventId
    type: EventType
    sender: PartyId
    occurred_at: IsoDatetime
    reference: _Reference | None = None
    # Strict: the schema's integer and boolean, not true read as need level 1 or "yes" as true.
    need_level: StrictInt = Field(ge=1, le=4)
    child_present: StrictBool | None = None
    summary: _Text | None = None
    child_voice: _Text | None = None
    categories: tuple[Slug, ...] = Field(default=(), max_length=20)
    service: Slug | None = None
    location: _Short | None = None
    # Only on coordination.referral_outcome, whose ``reference`` is the referral's event id.
    outcome: ReferralOutcome | None = None
    safeguarding: Safeguarding = Safeguarding()
    subjects: tuple[Subject, ...] = Field(min_length=1, max_length=50)

    @field_validator("occurred_at")
    @classmethod
    def _not_in_future(cls, value: datetime, info: ValidationInfo) -> datetime:
        _require_aware(value)
        if value.year < 1900:  # by its own clock: year 1 at +01:00 has no UTC time at all
            raise ValueError("is before 1900")
        if value > now_from(info) + CLOCK_SKEW:
            raise ValueError("is in the future")
        return value

    @model_validator(mode="after")
    def _born_by_occurred_at(self) -> ContactEvent:
        # A child cannot be the subject of an incident before birth: the dates are swapped
        # or mistyped in the sending system. The day of occurred_at as the sender wrote it
        # (its own offset) or in England, with the clock skew.
        latest = latest_day(self.occurred_at)
        dated = [i for i, s in enumerate(self.subjects) if s.dob is not None]
        late = [i for i in dated if (dob := self.subjects[i].dob) is not None and dob > latest]
        if late:
            # Raised as a ValidationError so each problem is located at its subject's dob
            # (a plain ValueError here would name only "(event)"); no input is carried.
            problems = [
                InitErrorDetails(
                    type=PydanticCustomError("dob_after_occurred_at", "is after occurred_at"),
                    loc=("subjects", i, "dob"),
                    input=None,
                )
                for i in late
            ]
            if late == dated:
                # Before everyone's birth: as likely the event's date that is wrong (a
                # default of 1900-01-01, day and month swapped), so it is named too.
                problems.insert(
                    0,
                    InitErrorDetails(
                        type=PydanticCustomError(
                            "occurred_before_births", "is before every subject's date of birth"
                        ),
                        loc=("occurred_at",),
                        input=None,
                    ),
                )
            raise ValidationError.from_exception_data(type(self).__name__, problems)
        return self

    @model_validator(mode="after")
    def _outcome_only_on_outcomes(self) -> ContactEvent:
        is_outcome = self.type == "coordination.referral_outcome"
        if is_outcome and (self.outcome is None or self.reference is None):
            raise ValueError(
                "a referral outcome needs outcome and reference (the referral's event id)"
            )
        if not is_outcome and self.outcome is not None:
            raise ValueError("outcome is only for coordination.referral_outcome events")
        return self

    def to_json_dict(self) -> dict[str, Any]:
        """The event as JSON-ready data (dates as ISO strings), e.g. to store or re-send."""
        return self.model_dump(mode="json")
