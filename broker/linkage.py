"""Identity linkage: subject keys, the only way a person appears in audit and state.

A subject key is a keyed HMAC-SHA-256 of the validated NHS number (``n:`` prefix, high
confidence) or, without one, of normalised demographics (``d:`` prefix, lower confidence):
family name, given name and date of birth. A subject with neither (names only) is linked to
no one: its key (``u:``) is of its place in its event (:meth:`Linker.unlinked_key`). The
postcode is left out of the key on purpose: a family that moves must stay linked, and
consent recorded without a postcode must still be found; the policy engine confirms a
postcode when both sides give one. The key lives in the keystore
(``broker.keys.load_linkage_key``) and never leaves the broker, so a subject key cannot be
reversed by guessing NHS numbers.

The worker files events and consent under these keys; the governance side computes the same
key from an NHS number an IG officer types, to find a child's disclosure log.
"""

from __future__ import annotations

import hmac

from broker.events import ConsentSubject, Subject, normalise_name, normalise_nhs_number

__all__ = ["Linker", "Unlinkable"]


class Unlinkable(ValueError):
    """A subject with neither an NHS number nor full demographics."""


class Linker:
    """Turns subjects into subject keys with one secret key."""

    def __init__(self, key: bytes) -> None:
        # Keyed once: each subject key then copies this state rather than keying afresh
        # (four HMACs per event, and keying is most of a short message's cost).
        self._keyed = hmac.new(key, digestmod="sha256")

    def _mac(self, label: str, value: str) -> str:
        mac = self._keyed.copy()
        mac.update(f"accord/subject/v1\x00{label}\x00{value}".encode())
        return mac.hexdigest()[:32]

    def from_nhs_number(self, nhs_number: str) -> str:
        return "n:" + self._mac("nhs", normalise_nhs_number(nhs_number))

    def _from_demographics(self, family: str | None, given: str | None, dob: object) -> str | None:
        if not family or not given or dob is None:
            return None
        parts = (normalise_name(family), normalise_name(given), str(dob))
        return "d:" + self._mac("demo", "|".join(parts))

    def subject_key(self, subject: Subject | ConsentSubject) -> str:
        """The primary key: NHS number when known, else demographics; :class:`Unlinkable`
        for a subject with neither (see :meth:`unlinked_key`)."""
        if subject.nhs_number:
            return self.from_nhs_number(subject.nhs_number)
        key = self._from_demographics(subject.family_name, subject.given_name, subject.dob)
        if key is None:  # never silently merge people
            raise Unlinkable("subject has neither an NHS number nor full demographics")
        return key

    def postcode_digest(self, postcode: str) -> str:
        """A keyed digest of a (normalised) postcode: enough to tell two apart, no more."""
        return "p:" + self._mac("postcode", postcode)

    def unlinked_key(self, place: str) -> str:
        """The key of a subject that cannot be linked: named, but with no NHS number and no
        date of birth, which a contact event allows. Names alone would make every Amy Smith
        one person, and one's consent govern the others' records; so the subject gets a key
        of its own ``place`` (its event id and position), linked to no one. No consent is
        ever filed under it, so it is shared only where consent is not needed.
        """
        return "u:" + self._mac("unlinked", place)

    def consent_keys(self, subject: ConsentSubject) -> tuple[str, ...]:
        """Every key a consent record is filed under: its NHS number's and its demographics'.

        The decision re-checks ``ConsentSubject.matches``, so filing wider never matches a
        subject the record is not about; it only lets a subject without an NHS number find it.
        """
        keys = [self.subject_key(subject)]
        demo = self._from_demographics(subject.family_name, subject.given_name, subject.dob)
        if demo is not None and demo not in keys:
            keys.append(demo)
        return tuple(keys)

    def lookup_keys(self, subject: Subject) -> tuple[str, ...]:
        """Every key consent about ``subject`` may be filed under (primary first)."""
        keys = [self.subject_key(subject)]
        demo = self._from_demographics(subject.family_name, subject.given_name, subject.dob)
        if demo is not None and demo not in keys:
            keys.append(demo)
        return tuple(keys)
