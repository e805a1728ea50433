"""Identity linkage: subject keys, the only way a person appears in audit and state.

A subject key is a keyed HMAC-SHA-256 of the validated NHS number (``n:`` prefix, high
confidence) or, without one, of normalised demographics (``d:`` prefix, lower confidence):
family name, given name, date of birth and, when given, postcode (the product brief, §3), so
two children of one name and birth date in different places are two subjects in the audit
log. A subject with neither (names only, or names without a letter) is linked to no one: its
key (``u:``) is of its place in its event (:meth:`Linker.unlinked_key`). Consent is filed and
looked up under the key without the postcode too, so a consent recorded without one, or at
an old address, is still found; the decision then confirms the postcode where both sides
give one (``ConsentSubject.matches``). The key lives in the keystore
(``broker.keys.load_linkage_key``) and never leaves the broker, so a subject key cannot be
reversed by guessing NHS numbers.

The worker files events and consent under these keys; the governance side computes the same
key from an NHS number an IG officer types, to find a child's disclosure log.
"""

from __future__ import annotations

import hmac
import re

from broker.events import ConsentSubject, Subject, normalise_name, normalise_nhs_number

_DIGIT = re.compile(r"\d")

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

    def _from_demographics(
        self, family: str | None, given: str | None, dob: object, postcode: str | None = None
    ) -> str | None:
        if family is None or given is None or dob is None:
            return None
        family, given = normalise_name(family), normalise_name(given)
        if not family or not given:  # "-" or "?" for a name not known: no one to link to
            return None
        parts = [family, given, str(dob)]
        if postcode is not None:  # normalised when the subject was validated
            parts.append(postcode)
        return "d:" + self._mac("demo", "|".join(parts))

    def subject_key(self, subject: Subject | ConsentSubject) -> str:
        """The primary key: NHS number when known, else demographics; :class:`Unlinkable`
        for a subject with neither (see :meth:`unlinked_key`)."""
        if subject.nhs_number:
            return self.from_nhs_number(subject.nhs_number)
        names = (subject.family_name, subject.given_name, subject.dob)
        key = self._from_demographics(*names, subject.postcode)
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
        return self._every_key(subject)

    def lookup_keys(self, subject: Subject) -> tuple[str, ...]:
        """Every key consent about ``subject`` may be filed under (primary first)."""
        return self._every_key(subject)

    def _every_key(self, subject: Subject | ConsentSubject) -> tuple[str, ...]:
        # Both sides file and look under the key without the postcode as well, so a consent
        # given without a postcode, or at an old address, or with an NHS number the event
        # lacks, is still found; the decision then applies ConsentSubject.matches, which
        # compares NHS numbers, and postcodes, where both give one. The key with the
        # postcode is only ever the primary.
        primary = self.subject_key(subject)
        loose = self._from_demographics(subject.family_name, subject.given_name, subject.dob)
        keys = (primary,) if loose is None or loose == primary else (primary, loose)
        legacy = self.legacy_key(subject)
        return keys if legacy is None or legacy in keys else (*keys, legacy)

    def legacy_key(self, subject: Subject | ConsentSubject) -> str | None:
        """The name-and-birth-date key as Accord made it before names dropped their accents
        and kept their digits (2026-12-05): consent filed, and shares noted, under it are
        still found. Only names with a letter outside ASCII, or a digit, have one; for the
        rest it is the key without the postcode.

        It is for finding what an older Accord filed, never for filing anew: "Twin 1" and
        "Twin 2" share it. A consent record found under it is checked by the decision, which
        compares the names as they are now; a share keeps no name, so shares are noted
        without it (``pipeline._ingress``), else one twin's withdrawal would recall the
        other's shares."""
        family, given, dob = subject.family_name, subject.given_name, subject.dob
        if family is None or given is None or dob is None:
            return None
        names = family + given
        if names.isascii() and not _DIGIT.search(names):
            return None
        old = ["".join(filter(str.isalpha, name.casefold())) for name in (family, given)]
        return "d:" + self._mac("demo", "|".join([*old, str(dob)])) if all(old) else None
