"""Which subject keys a child's disclosure log is under, from what an IG officer types.

A child is named by NHS number, or, without one, by given name, family name and date of birth
and perhaps postcode (the product brief, §3). The worker files such a child under the keys
``broker.linkage`` computes, and a look-up computes the same ones with the same functions:
every key the worker may have filed this child's records under, never a guess at others.

The keys are HMACs: a record decided with a postcode is under a key that needs that postcode,
so a look-up without it cannot find the record. :class:`SubjectSearch` says which forms were
searched, naming no one, for the officer to report and the audit log to keep.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import ValidationError

from broker.errors import UsageError
from broker.events import Subject, normalise_name
from broker.linkage import Linker

# The options a look-up by demographics takes, by the field of a subject each one fills.
_OPTIONS = {
    "given_name": "--given-name",
    "family_name": "--family-name",
    "dob": "--dob",
    "postcode": "--postcode",
}
_NEITHER = "give --nhs-number, or --given-name, --family-name and --dob (and --postcode)"
# A look-up by name says this whatever it finds: a child whose events gave an NHS number has
# every decision filed under that number's key only (``Linker.subject_key``), so "nothing
# found" by name, sent to a family, would read as "nothing held".
NHS_NUMBER_ONLY = (
    "records filed under an NHS number are found only by that number, so nothing found here "
    "does not mean nothing is held: if the child has one, ask the requester for it and look "
    "up by it"
)


def subject_key_for_nhs_number(nhs_number: str, linkage_key: bytes) -> str:
    """The subject key the worker filed a child under; the NHS number itself goes no further."""
    try:
        return Linker(linkage_key).from_nhs_number(nhs_number)
    except ValueError as exc:
        # The reason only ("must be 10 digits"), never the number typed.
        raise UsageError(f"--nhs-number: {exc}") from None


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


@dataclass(frozen=True, slots=True)
class SubjectSearch:
    """The subject keys one look-up searched (most specific first), and in which forms."""

    keys: tuple[str, ...]
    by: Literal["nhs_number", "demographics"]
    # By demographics: whether a postcode was given, so the key with it was searched as well
    # as the key without; and whether the name had a key before names dropped their accents
    # and kept their digits (2026-12-05), searched too.
    with_postcode: bool = False
    older_key: bool = False

    def detail(self) -> dict[str, str]:
        """For the audit record of the look-up: how it was made, never what was typed."""
        if self.by == "nhs_number":
            return {}
        return {"searched_by": "demographics", "with_postcode": _yes(self.with_postcode)}

    def matched_on(self, key: str) -> str:
        """What a record found under ``key`` (one of :attr:`keys`) was matched on, for each
        line of the disclosure log: only the postcode's key, by demographics, tells this
        child from another of the same name and birth date."""
        if self.by == "nhs_number":
            return "NHS number"
        if self.with_postcode and key == self.keys[0]:
            return "name, date of birth, postcode"
        if self.older_key and key == self.keys[-1]:
            # Accents and digits ignored: "Twin 2" is found by a look-up for "Twin 1".
            return "older spelling of the name, date of birth"
        return "name and date of birth only"

    def summary(self) -> str | None:
        """One line for the officer on what a look-up by demographics searched, and what it
        cannot find (:data:`NHS_NUMBER_ONLY`); None by NHS number: one key, nothing to
        explain."""
        if self.by == "nhs_number":
            return None
        line = f"searched by name and date of birth; with postcode: {_yes(self.with_postcode)}"
        if not self.with_postcode:
            line += " (records decided with a postcode are found only with it)"
        return f"{line}; older spelling's key: {_yes(self.older_key)}; {NHS_NUMBER_ONLY}"


def subject_search(
    linkage_key: bytes,
    *,
    now: datetime,
    nhs_number: str | None = None,
    given_name: str | None = None,
    family_name: str | None = None,
    dob: str | None = None,
    postcode: str | None = None,
) -> SubjectSearch:
    """The keys to search for one child, named by NHS number or by demographics (not both).

    Demographics are checked as an event's subject is (``now`` bounds the date of birth), and
    a name must hold a letter. :class:`UsageError` names the option at fault, never its value.
    """
    typed = {"given_name": given_name, "family_name": family_name, "dob": dob,
             "postcode": postcode}  # fmt: skip
    given = {field: value for field, value in typed.items() if value is not None}
    if nhs_number is not None:
        if given:
            # Named, so the officer sees which they gave (never what they typed in them).
            also = " and ".join(_OPTIONS[f] for f in _OPTIONS if f in given)
            raise UsageError(f"--nhs-number given with {also}: {_NEITHER}, not both")
        return SubjectSearch((subject_key_for_nhs_number(nhs_number, linkage_key),), "nhs_number")
    if not given:
        raise UsageError(_NEITHER)
    missing = [_OPTIONS[f] for f in ("given_name", "family_name", "dob") if f not in given]
    if missing:
        raise UsageError(f"a look-up by name also needs {' and '.join(missing)}")
    subject = _validated(given, now)
    keys = Linker(linkage_key).lookup_keys(subject)
    # lookup_keys gives the primary key, the key without the postcode when that differs,
    # then the older spelling's key when the name has one: so any key past those is it.
    with_postcode = subject.postcode is not None
    return SubjectSearch(
        keys, "demographics", with_postcode, older_key=len(keys) > 1 + with_postcode
    )


def _validated(given: dict[str, str], now: datetime) -> Subject:
    try:
        # The role is not part of any key: a parent's or a child's look-up is the same.
        subject = Subject.model_validate({"role": "child", **given}, context={"now": now})
    except ValidationError as exc:
        err = exc.errors(include_input=False, include_url=False)[0]
        field = str(err["loc"][0]) if err["loc"] else ""
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "string_too_short":  # blank once stripped
            message = "needs at least one letter"
        elif field == "postcode" and err["type"] == "string_too_long":
            message = "not the shape of a UK postcode"  # as a short one that is not one is told
        elif field == "dob" and err["type"] != "value_error":
            message = "not a real date (YYYY-MM-DD)"  # pydantic's words name datetimes
        elif field == "dob" and message.startswith("must be an ISO 8601"):
            message = "must be an ISO 8601 date (YYYY-MM-DD)"
        raise UsageError(f"{_OPTIONS.get(field, '--dob')}: {message}") from None
    for field in ("given_name", "family_name"):
        if not normalise_name(getattr(subject, field) or ""):
            # "-" or "?" for a name not known links to no one: nothing could be filed under it.
            raise UsageError(f"{_OPTIONS[field]}: needs at least one letter")
    return subject
