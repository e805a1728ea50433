"""The policy bundle as data: parties, agreements and their clauses, restrictions.

The models check shape only (types, required keys, no unknown keys: a misspelt ``when``
must not silently drop a condition). Meaning is checked by ``_check`` with file locations,
so that one run reports every problem. Vocabulary lives here as constants.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from typing import Annotated, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)
from pydantic_core import PydanticCustomError

from broker.errors import UsageError
from broker.policy._flags import FlagRule

__all__ = [
    "ARTICLE6_BASES",
    "CONSENT_RULES",
    "PARTY_KINDS",
    "SELECTORS",
    "SPECIAL_BASES",
    "TRANSFORMS",
    "TRANSFORM_TARGETS",
    "Agreement",
    "Bundle",
    "Clause",
    "LawfulBasis",
    "Party",
    "Restriction",
]

PARTY_KINDS: Final = ("agency", "coordinating_team", "hub", "school")
#: The kinds of party that run a desk: every recipient's.
DESK_KINDS: Final = ("coordinating_team", "hub", "school")
ARTICLE6_BASES: Final = (
    "public_task",
    "legal_obligation",
    "vital_interests",
    "consent",
    "legitimate_interests",
)
SPECIAL_BASES: Final = (
    "safeguarding_children",
    "health_or_social_care",
    "explicit_consent",
    "vital_interests",
    "law_enforcement",
)
CONSENT_RULES: Final = ("not_required", "required", "required_unless_safeguarding")
SELECTORS: Final = ("hub:locality", "school:of-child")
TRANSFORMS: Final = ("age_band", "year_of_birth", "postcode_district", "initials", "pseudonym")
# Which field paths each transform can meaningfully apply to.
TRANSFORM_TARGETS: Final[dict[str, frozenset[str]]] = {
    "age_band": frozenset({"subject.dob"}),
    "year_of_birth": frozenset({"subject.dob"}),
    "postcode_district": frozenset({"subject.postcode"}),
    "initials": frozenset({"subject.name"}),
    "pseudonym": frozenset(
        {
            "subject.name",
            "subject.nhs_number",
            "subject.dob",
            "subject.address",
            "subject.postcode",
            "subject.school_urn",
            "event.reference",
            "event.location",
        }
    ),
}

Ident = Annotated[str, StringConstraints(min_length=1, max_length=100)]
_Notes = Annotated[str, StringConstraints(max_length=4000)]
#: A clause's purpose; consent records and consent authorities name purposes the same way.
PURPOSE_PATTERN: Final = r"^[a-z][a-z0-9_]{0,63}$"
_Purpose = Annotated[str, StringConstraints(pattern=PURPOSE_PATTERN)]


def _cel_source(value: object) -> object:
    """A ``when`` is CEL written as text. YAML reads ``when: true`` or ``yes`` as a boolean
    and ``when:`` as nothing, and a ``when`` of nothing would share without a condition."""
    if isinstance(value, str) and value.strip():
        return value
    if value is None:
        what = "nothing"
    elif isinstance(value, bool):
        what = "a YAML boolean (true, yes, on, false, no, off)"
    elif isinstance(value, int | float):
        what = "a number"
    elif isinstance(value, str):
        what = "an empty text"
    else:
        what = f"a {'list' if isinstance(value, list) else 'mapping'}"
    raise PydanticCustomError(
        "cel_source",
        'must be a CEL expression in quotes, e.g. "event.need_level >= 3"; found {what}',
        {"what": what},
    )


def _authority_purpose(value: str) -> str:
    if value == "*" or re.match(PURPOSE_PATTERN, value):
        return value
    # Not quoting the value: a problem is one line, and it may hold a newline.
    raise PydanticCustomError(
        "purpose",
        "must be '*', or lower-case letters, digits and _ as a clause's purpose is written "
        "(early_help, not early-help)",
    )


_Cel = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
_When = Annotated[_Cel, BeforeValidator(_cel_source)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Party(_Model):
    id: Ident
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    kind: Literal["agency", "coordinating_team", "hub", "school"]
    status: Literal["active", "suspended"] = "active"
    localities: tuple[str, ...] = ()
    urn: str | None = None
    description: _Notes | None = None


class LawfulBasis(_Model):
    """UK GDPR Art 6 basis, and the Art 9 / Art 10 conditions when the data needs them."""

    article6: str
    article9: str | None = None
    article10: str | None = None


class Clause(_Model):
    id: Ident
    from_: tuple[str, ...] = Field(alias="from", min_length=1)
    event_types: tuple[str, ...] = Field(min_length=1)
    to: tuple[str, ...] = Field(min_length=1)
    purpose: _Purpose
    lawful_basis: LawfulBasis
    consent: Literal["not_required", "required", "required_unless_safeguarding"]
    # Checked before the None branch: a given but empty when is a fault, not "no condition".
    when: Annotated[_Cel | None, BeforeValidator(_cel_source)] = None
    subjects: tuple[str, ...] | None = None
    share: tuple[str, ...] = Field(min_length=1)
    transform: dict[str, str] = Field(default_factory=dict)
    description: _Notes | None = None


class Agreement(_Model):
    id: Ident
    title: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    version: int | Ident
    status: Literal["draft", "approved", "suspended"]
    valid_from: date
    valid_until: date
    clauses: tuple[Clause, ...] = Field(min_length=1)
    description: _Notes | None = None
    notes: _Notes | None = None


class Restriction(_Model):
    id: Ident
    when: _When
    withhold: Literal["all"] | tuple[str, ...]
    except_kinds: tuple[str, ...] = ()
    description: _Notes | None = None


class ConsentAuthority(_Model):
    """What a party may record consent for (``consent-authorities.yaml``): purposes and
    recipients, ``"*"`` for any, ``kind:<kind>`` for every party of a kind."""

    purposes: tuple[Annotated[str, AfterValidator(_authority_purpose)], ...] = Field(min_length=1)
    recipients: tuple[str, ...] = Field(min_length=1)


class Bundle(_Model):
    """A whole policy bundle. ``version`` is a hash of its canonical form."""

    parties: dict[str, Party]
    agreements: tuple[Agreement, ...] = ()
    restrictions: tuple[Restriction, ...] = ()
    # None without consent-authorities.yaml: then active co-ordinating teams may record any.
    consent_authorities: dict[str, ConsentAuthority] | None = None
    # flags.yaml, in file order (the order rules are tried in).
    flags: tuple[FlagRule, ...] = ()

    def consent_recorders(self) -> list[str]:
        """Active parties whose consent records may count (docs/policy-language.md §5)."""
        active = {p for p, party in self.parties.items() if party.status == "active"}
        if self.consent_authorities is None:
            named = {p for p, party in self.parties.items() if party.kind == "coordinating_team"}
        else:
            named = set(self.consent_authorities)
        return sorted(named & active)

    def desk_kind(self, party: str, *, option: str) -> str:
        """``party``'s kind if it may run a desk (an active recipient); else a one-line
        ``UsageError`` naming ``option``, the command's way of naming the party."""
        found = self.parties.get(party)
        if found is None:
            raise UsageError(f"{option} {party}: no such party in the policy bundle")
        if found.kind not in DESK_KINDS:
            raise UsageError(
                f"{option} {party}: a desk is for recipients, and {party} is an agency"
            )
        if found.status != "active":
            raise UsageError(f"{option} {party}: the party is suspended")
        return found.kind

    def canonical(self) -> bytes:
        """Sorted-key JSON of the parsed bundle: formatting, comments, file order do not count."""
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        data["agreements"] = sorted(data["agreements"], key=lambda a: a["id"])
        if not data["flags"]:
            # Flag rules are policy (they count in the version), but a bundle without them
            # keeps the version it had before flags.yaml existed.
            del data["flags"]
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    def version(self) -> str:
        return "sha256:" + hashlib.sha256(self.canonical()).hexdigest()
