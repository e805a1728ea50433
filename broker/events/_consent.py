"""Consent records: what a family agreed to, refused or withdrew, for which purposes and whom.

How a record matches a subject (``ConsentSubject.matches``): a record naming an NHS number
matches exactly the subjects with that NHS number; a record without one matches the subjects
whose normalised given name, family name and date of birth equal the record's (and whose
postcode does too when both give one). A record giving both matches a subject that has no
NHS number by its demographics, so a withdrawal made with the NHS number still reaches an
event that names the child without one; two different NHS numbers never match. Normalising
folds case, drops accents and everything that is not a letter, so ``O'Neil`` and ``oneil``
agree, and ``Siân`` and ``Sian``. The
worker files records under every key they could match by and re-checks with this rule.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from broker.events._model import (
    CLOCK_SKEW,
    EARLIEST_DOB,
    IsoDate,
    IsoDatetime,
    NhsNumber,
    Postcode,
    Subject,
    _Name,
    _require_aware,
    iso_text,
    latest_day,
)

__all__ = ["ConsentRecord", "ConsentState", "ConsentSubject", "normalise_name"]

ConsentState = Literal["given", "refused", "withdrawn"]

_Token = Annotated[str, StringConstraints(pattern=r"^(\*|kind:[a-z_]+|[a-z0-9][a-z0-9_.-]{0,63})$")]


def normalise_name(name: str) -> str:
    """Case-folded letters and digits, accents dropped: the demographic key ignores spacing,
    hyphens, apostrophes and accents. ``""`` for a name with no letter at all.

    "Siân" can be typed as one letter or as ``a`` and a combining circumflex, which look the
    same; and many agencies' systems store "Sian". All three are one child: a withdrawal
    typed one way must reach events typed another. So names are decomposed and their
    combining marks dropped before the filter. Digits are kept: a newborn's placeholder
    names, "Twin 1" and "Twin 2" (or "Baby 1", "Baby 2"), are two children of one birth
    date, and before 2026-12-05, when only letters counted, they were one. A name with no
    letter ("-", "?", "1") says the name is not known, and names no one.
    """
    folded = name.casefold()
    if folded.isascii():  # most names, on every event: nothing to decompose
        kept = "".join(filter(str.isalnum, folded))
        return "" if kept.isdigit() else kept
    decomposed = unicodedata.normalize("NFKD", folded)
    kept = "".join(c for c in decomposed if c.isalnum() and not unicodedata.combining(c))
    return kept if any(c.isalpha() for c in kept) else ""


def _end_of_day(value: Any) -> Any:
    # A bare date means "valid through that whole day" (UTC), as agreements' dates do.
    iso_text(value)
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime.combine(value, time.max, tzinfo=UTC)
    if isinstance(value, str) and len(value) == 10:
        try:
            return _end_of_day(date.fromisoformat(value))
        except ValueError:
            return value
    return value


class ConsentSubject(BaseModel):
    """Who the record is about: an NHS number, or given name, family name and date of birth."""

    # No ValidationError of a consent record quotes its input: names and NHS numbers.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    nhs_number: NhsNumber | None = None
    given_name: _Name | None = None
    family_name: _Name | None = None
    dob: IsoDate | None = None
    postcode: Postcode | None = None

    @model_validator(mode="after")
    def _identifiable(self, info: ValidationInfo) -> ConsentSubject:
        if self.nhs_number is None and (
            self.given_name is None or self.family_name is None or self.dob is None
        ):
            raise ValueError("needs nhs_number, or given_name, family_name and dob")
        # Names identify the person only without an NHS number; and a record filed before
        # this rule (read back from worker state, without a context) must still load: a
        # withdrawal dropped at restart would put its consent back in force.
        if self.nhs_number is None and isinstance(info.context, dict):
            for name in (self.given_name, self.family_name):
                if name is not None and not normalise_name(name):
                    raise ValueError("a name needs at least one letter")
        return self

    def matches(self, subject: Subject) -> bool:
        """Whether this record is about ``subject`` (see the module docstring)."""
        if self.nhs_number is not None and subject.nhs_number is not None:
            return subject.nhs_number == self.nhs_number
        if self.given_name is None or self.family_name is None or self.dob is None:
            return False  # an NHS number alone, and the subject has none
        if subject.given_name is None or subject.family_name is None or subject.dob is None:
            return False
        if (
            self.postcode is not None
            and subject.postcode is not None
            and self.postcode != subject.postcode
        ):
            return False
        family, given = normalise_name(subject.family_name), normalise_name(subject.given_name)
        # A name with no letter ("-", "?": unknown) names no one, so it matches no one.
        return (
            subject.dob == self.dob
            and bool(family and given)
            and family == normalise_name(self.family_name)
            and given == normalise_name(self.given_name)
        )


class ConsentRecord(BaseModel):
    """A consent decision (docs/policy-language.md §5): recipients are ids, kind:K or *."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        hide_input_in_errors=True,
        json_schema_extra={
            "$id": "https://accord.example/schemas/consent-record.v1.json",
            "title": "Accord consent record v1",
        },
    )

    subject: ConsentSubject
    state: ConsentState
    purposes: tuple[_Token, ...] = Field(min_length=1, max_length=50)
    recipients: tuple[_Token, ...] = Field(min_length=1, max_length=200)
    recorded_by: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
    recorded_at: IsoDatetime
    valid_until: Annotated[
        datetime | None,
        BeforeValidator(_end_of_day),
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "string", "format": "date-time"},
                    {
                        "type": "string",
                        "format": "date",
                        "description": "through that whole day (UTC)",
                    },
                    {"type": "null"},
                ]
            }
        ),
    ] = None

    @field_validator("recorded_at")
    @classmethod
    def _recorded_not_in_future(cls, value: datetime, info: ValidationInfo) -> datetime:
        _require_aware(value)
        ctx = info.context
        # The clock is optional here: scenarios describe a world at a chosen time, where a
        # record made "later" is legitimate test data (simply not yet in force).
        now = ctx.get("now") if isinstance(ctx, dict) else None
        if isinstance(now, datetime) and value > now + CLOCK_SKEW:
            raise ValueError("is in the future")
        return value

    @field_validator("valid_until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _require_aware(value)

    @model_validator(mode="after")
    def _possible(self, info: ValidationInfo) -> ConsentRecord:
        # A record that could never be in force, or about someone not yet born when it was
        # recorded, is a mistake in the sending system: refused as it comes in (parse_consent
        # gives a context). One filed before this rule is read back as it was filed: dropping
        # a withdrawal at restart would put the consent it withdrew back in force.
        if not isinstance(info.context, dict):
            return self
        if self.valid_until is not None and self.valid_until < self.recorded_at:
            raise ValueError("valid_until is before recorded_at: it could never be in force")
        dob = self.subject.dob
        if dob is not None and (dob < EARLIEST_DOB or dob > latest_day(self.recorded_at)):
            raise ValueError("subject.dob is before 1900 or after recorded_at")
        return self

    def in_force(self, at: datetime) -> bool:
        """In force from ``recorded_at`` until ``valid_until`` (inclusive)."""
        return self.recorded_at <= at and (self.valid_until is None or at <= self.valid_until)

    def covers(self, purpose: str, recipient: str, recipient_kind: str) -> bool:
        """Whether the record speaks about this purpose and recipient."""
        purposes = self.purposes
        if "*" not in purposes and purpose not in purposes:
            return False
        recipients = self.recipients
        return (
            "*" in recipients or recipient in recipients or f"kind:{recipient_kind}" in recipients
        )
