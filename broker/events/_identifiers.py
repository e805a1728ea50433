"""Identifier checks: NHS number (modulus 11) and the shape of a UK postcode.

These return normalised values or raise ``ValueError`` with a message that never quotes the
input: the callers are pydantic validators, whose errors end up in logs and CLI output.
"""

from __future__ import annotations

import operator
import re

__all__ = [
    "is_valid_nhs_number",
    "normalise_nhs_number",
    "normalise_postcode",
    "postcode_district",
    "postcode_sector",
]

_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)
_ZERO_WEIGHTED = 48 * sum(_WEIGHTS)  # ord("0") times each weight
_SEPARATORS = re.compile(r"[\s-]")

# The shapes the Royal Mail uses (outward code A9, A99, AA9, AA99, A9A, AA9A; inward 9AA),
# with the letters each position may hold. GIR 0AA is Girobank's historic special case.
_OUTWARD = (
    r"(?:[A-PR-UWYZ][0-9][0-9]?"
    r"|[A-PR-UWYZ][A-HK-Y][0-9][0-9]?"
    r"|[A-PR-UWYZ][0-9][A-HJKPSTUW]"
    r"|[A-PR-UWYZ][A-HK-Y][0-9][ABEHMNPRVWXY])"
)
_INWARD = r"[0-9][ABD-HJLNP-UW-Z]{2}"
_POSTCODE = re.compile(rf"^(?:({_OUTWARD}) ?({_INWARD})|(GIR) ?(0AA))$")


def is_valid_nhs_number(digits: str) -> bool:
    """True for ten digits whose last is the modulus-11 check digit of the first nine, not
    all the same digit (see :func:`is_placeholder_nhs_number`)."""
    if len(digits) != 10 or not digits.isascii() or not digits.isdigit():
        return False
    if is_placeholder_nhs_number(digits):
        return False
    # On the ASCII codes, at C speed (every subject of every event comes through here twice):
    # each digit's code is 48 more than its value.
    codes = digits.encode("ascii")
    total: int = sum(map(operator.mul, codes, _WEIGHTS)) - _ZERO_WEIGHTED
    check = 11 - total % 11
    if check == 11:
        check = 0
    # A remainder giving 10 means no valid number exists with those nine digits.
    return check != 10 and check == codes[9] - 48


def is_placeholder_nhs_number(digits: str) -> bool:
    """One digit ten times: every such number passes modulus 11, none is ever issued, and
    record systems write them for "not known". Taken as an NHS number, it would make every
    child it stands for one subject: one's consent would govern the others' records."""
    return len(digits) == 10 and digits == digits[0] * 10


def normalise_nhs_number(value: str, *, allow_placeholder: bool = False) -> str:
    """Strip spaces and hyphens (``999 123 4567`` is how people write it) and check it.

    ``allow_placeholder`` reads back what was filed before placeholders were refused.
    """
    # Digits alone (as validation leaves them) hold no separator to strip.
    digits = value if value.isdigit() else _SEPARATORS.sub("", value)
    if len(digits) != 10 or not digits.isascii() or not digits.isdigit():
        raise ValueError("must be 10 digits")
    if is_placeholder_nhs_number(digits):
        if allow_placeholder:
            return digits  # each passes modulus 11
        raise ValueError("one digit repeated: a placeholder, not an NHS number (leave it out)")
    if not is_valid_nhs_number(digits):
        raise ValueError("check digit does not match (modulus 11)")
    return digits


def normalise_postcode(value: str) -> str:
    """Upper-case, single space before the inward code; ``ValueError`` if not UK-shaped."""
    compact = "".join(value.split()).upper()
    match = _POSTCODE.match(compact)
    if match is None:
        raise ValueError("not the shape of a UK postcode")
    outward = match.group(1) or match.group(3)
    inward = match.group(2) or match.group(4)
    return f"{outward} {inward}"


def postcode_district(postcode: str) -> str:
    """The outward code of a normalised postcode: ``DY4 7AA`` → ``DY4``."""
    return postcode.split(" ", 1)[0]


def postcode_sector(postcode: str) -> str:
    """The sector of a normalised postcode: ``WV10 6QA`` → ``WV10 6``."""
    return postcode[:-2]
