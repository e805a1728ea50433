"""Identifier checks: NHS number (modulus 11), the shape of a UK postcode, and whether a typed
identifier holds an NHS or telephone number.

These return normalised values or raise ``ValueError`` with a message that never quotes the
input: the callers are pydantic validators, whose errors end up in logs and CLI output.
"""

from __future__ import annotations

import operator
import re
from datetime import datetime

__all__ = [
    "holds_nhs_or_telephone_number",
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


# An NHS number or a telephone number however it is grouped (943-476-5919, 07700.900123,
# 020-7946-0000, 20-7946-0000, IG/94/34/76/59/19), but not a case number such as
# IG-2026-000123, whose ten digits are as many as an NHS number's. Each run of digit groups
# joined by separators is tried group by group, so a number inside a longer reference is
# found too.
_DIGIT_GROUPS = re.compile(r"\d+(?:[-./:_]+\d+)*")
_SEPARATOR = re.compile(r"[-./:_]+")


def holds_nhs_or_telephone_number(text: str) -> bool:
    """Whether ``text`` (an identifier someone typed: a reference, a staff id) holds what could
    be an NHS number or a telephone number, however it is grouped. Such a text must not go
    into the append-only audit log, where a number would point at a person forever."""
    for run in _DIGIT_GROUPS.finditer(text):
        groups = _SEPARATOR.split(run.group())
        for first in range(len(groups)):
            for last in range(first + 1, len(groups) + 1):
                if _could_be_personal(groups[first:last]):
                    return True
    return False


def _could_be_personal(groups: list[str]) -> bool:
    """True for digit groups that could be one NHS (or CHI) number or telephone number."""
    digits = "".join(groups)
    if len(digits) < 10:
        return False
    if len(groups) == 1:
        return _one_run_could_be_personal(digits)
    if len(digits) != 10:
        return _telephone(digits)  # a telephone number as dialled, or from abroad
    lengths = [len(g) for g in groups]
    if lengths == [3, 3, 4] or digits.startswith("7") or _telephone(digits):
        # An NHS number as it is printed, even mistyped; a mobile without its 0; ten digits
        # as dialled (from 01 or 08).
        return True
    if _printed_without_its_0(digits, lengths):
        return True
    # Regrouped, it is a number only if it passes the check digit and lies where numbers are
    # issued: 3 to 9 first (England, Wales, Northern Ireland, the 999 test range), or a
    # Scottish CHI number, which starts with its holder's date of birth (ddmmyy). A case
    # number that is neither, such as IG-2026-000123 (a 26th month), is taken.
    return is_valid_nhs_number(digits) and (digits[0] >= "3" or _is_ddmmyy(digits[:6]))


def _one_run_could_be_personal(digits: str) -> bool:
    """Ten or more digits in a row, ungrouped. Ten are an NHS or CHI number (even mistyped:
    a wrong check digit still points at a person) or a number without its 0, unless they
    start 00 (no NHS or CHI number does, and nobody dials ten digits from 00: E0012345678).
    Twelve are an NHS smartcard (CIS2) user id's shape (555123456789), taken unless a
    telephone number (from 0, or 44 and ten more). Eleven (a UK number as dialled, or an NHS
    number with a digit typed beside it) and thirteen or more (a number with its dialling
    code, 0044...; two run together) are refused: no staff id shape needs them."""
    if len(digits) == 10:
        return not digits.startswith("00")
    if len(digits) == 12:
        return _telephone(digits)
    return True


def _telephone(digits: str) -> bool:
    """A UK number as dialled: eleven digits from 0 (07700 900123, 020 7946 0000), ten from
    01 or 08 (some areas' numbers, 0800's); or from abroad, 44 and ten more. Ten digits from
    00, 02, 05 or 07 are not a number anyone dials, but they are a month or a sequence
    (IG/07/2026/0042, REQ-000123-2026)."""
    if digits.startswith("0"):
        return len(digits) >= 11 or digits.startswith(("01", "08"))
    return digits.startswith("44") and len(digits) >= 12


def _printed_without_its_0(digits: str, lengths: list[int]) -> bool:
    """A London number as it is printed after +44, its 0 dropped: 20 7946 0000. London's
    local numbers start with 3, 7 or 8, so case numbers grouped 2-4-4 from 20 (20-2026-0042)
    are still taken. Other areas' numbers without their 0 share their shapes with year and
    sequence references (1632 960000 with 1999 000123), and are not refused; 121 496 0000 is
    grouped as an NHS number, and is."""
    return lengths == [2, 4, 4] and digits[:2] == "20" and digits[2] in "378"


def _is_ddmmyy(text: str) -> bool:
    try:
        datetime.strptime(text, "%d%m%y")  # noqa: DTZ007 -- a calendar check, not a time
    except ValueError:
        return False
    return True
