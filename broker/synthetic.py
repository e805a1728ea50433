"""Synthetic families for tests and the demo: Faker en_GB names, 999-range NHS numbers.

Nothing here is real: NHS numbers come from the 999 test range (never issued to a patient)
with a valid modulus-11 check digit, and postcodes are well-shaped West Midlands postcodes
with random inward codes. Pass a seeded ``random.Random`` for reproducible data.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from faker import Faker

from broker.events import is_valid_nhs_number

__all__ = ["SyntheticFamilies", "synthetic_nhs_number", "synthetic_postcode"]

_DISTRICTS = ("DY4", "WS10", "B68", "B69", "B70", "B71", "WV1", "WV10", "WV11", "WV14")
_INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"


def synthetic_nhs_number(rng: random.Random) -> str:
    """A valid NHS number in the 999 test range."""
    while True:
        candidate = "999" + "".join(str(rng.randrange(10)) for _ in range(6))
        for check in range(10):
            if is_valid_nhs_number(candidate + str(check)):
                return candidate + str(check)
        # These nine digits have no valid check digit (remainder 10); draw again.


def synthetic_postcode(rng: random.Random, districts: tuple[str, ...] = _DISTRICTS) -> str:
    """A UK-shaped postcode in one of ``districts``."""
    inward = f"{rng.randrange(10)}{rng.choice(_INWARD_LETTERS)}{rng.choice(_INWARD_LETTERS)}"
    return f"{rng.choice(districts)} {inward}"


def _born(person: dict[str, Any]) -> date:
    """A subject's date of birth; the earliest date when it has none or a deliberately bad one
    (a test of the broker's checks), which are not this module's to refuse."""
    try:
        return date.fromisoformat(person.get("dob") or "")
    except (TypeError, ValueError):
        return date.min


class SyntheticFamilies:
    """Makes synthetic subjects and contact events (as JSON-ready dicts)."""

    def __init__(self, seed: int = 0, *, today: date | None = None) -> None:
        self.rng = random.Random(seed)  # noqa: S311  # synthetic data, not cryptography
        self.faker = Faker("en_GB")
        self.faker.seed_instance(seed)
        self.today = today or date(2026, 11, 1)
        self._issued: set[str] = set()

    def nhs_number(self) -> str:
        """A number no one else from these families has: two people sharing one would be
        one person to the broker (one consent, one disclosure log)."""
        while (number := synthetic_nhs_number(self.rng)) in self._issued:
            pass
        self._issued.add(number)
        return number

    def postcode(self, districts: tuple[str, ...] = _DISTRICTS) -> str:
        return synthetic_postcode(self.rng, districts)

    def subject(
        self,
        role: str,
        *,
        family_name: str | None = None,
        postcode: str | None = None,
        address: str | None = None,
        age: int | None = None,
        school_urn: str | None = None,
        on: date | None = None,
    ) -> dict[str, Any]:
        """One person; children get an age of 0-17, adults 18-60 unless ``age`` is given.

        The age is on the day ``on`` (default ``today``), so the person is born no later than
        that day: pass the day of the earliest event the person will be in.
        """
        if age is None:
            age = (
                self.rng.randrange(0, 18)
                if role in {"child", "sibling"}
                else self.rng.randrange(18, 61)
            )
        dob = (on or self.today) - timedelta(days=age * 365 + self.rng.randrange(365))
        subject: dict[str, Any] = {
            "role": role,
            "nhs_number": self.nhs_number(),
            "given_name": self.faker.first_name(),
            "family_name": family_name or self.faker.last_name(),
            "dob": dob.isoformat(),
            "address": address or self.faker.street_address().replace("\n", ", "),
            "postcode": postcode or self.postcode(),
        }
        if school_urn is not None:
            subject["school_urn"] = school_urn
        return subject

    def event(
        self,
        event_type: str = "police.domestic_incident",
        sender: str = "wmp",
        *,
        subjects: list[dict[str, Any]] | None = None,
        need_level: int = 3,
        occurred_at: datetime | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """A contact event; by default a child and a parent at the same address.

        Raises ``ValueError`` if a subject is born after the day of ``occurred_at``: the
        broker quarantines such an event, and made by chance (a child of 0 given with an
        event set in the past) it would fail a test or a demo now and then, by the seed.
        """
        when = occurred_at or datetime.combine(self.today, datetime.min.time(), tzinfo=UTC)
        if subjects is None:
            family = self.faker.last_name()
            postcode = self.postcode()
            address = self.faker.street_address().replace("\n", ", ")
            subjects = [
                self.subject(
                    role, family_name=family, postcode=postcode, address=address, on=when.date()
                )
                for role in ("child", "parent")
            ]
        for i, person in enumerate(subjects):
            if _born(person) > when.date():
                raise ValueError(
                    f"subjects[{i}] is born after occurred_at: make it with subject(on=...) "
                    "no later than the event's day"
                )
        event: dict[str, Any] = {
            "event_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "type": event_type,
            "sender": sender,
            "occurred_at": when.isoformat().replace("+00:00", "Z"),
            "reference": f"REF/{self.rng.randrange(10**6):06d}",
            "need_level": need_level,
            "child_present": True,
            "summary": self.faker.sentence(nb_words=12),
            "child_voice": None,
            "categories": ["domestic_abuse"],
            "service": None,
            "location": self.faker.city(),
            "safeguarding": {"concern": False, "justification": None},
            "subjects": subjects,
        }
        event.update(fields)
        return event
