"""NHS number (modulus 11) and UK postcode shape checks."""

from __future__ import annotations

import random

import pytest

from broker.events import (
    is_valid_nhs_number,
    normalise_nhs_number,
    normalise_postcode,
    postcode_district,
    postcode_sector,
)
from broker.synthetic import SyntheticFamilies, synthetic_nhs_number


@pytest.mark.parametrize("number", ["9997877896", "9991742182", "9999081002", "9993390755"])
def test_test_range_numbers_with_a_correct_check_digit_are_valid(number: str) -> None:
    assert is_valid_nhs_number(number)


@pytest.mark.parametrize("number", ["9997877897", "9991742180", "1234567890"])
def test_a_wrong_check_digit_is_invalid(number: str) -> None:
    assert not is_valid_nhs_number(number)


def test_nine_digits_whose_remainder_gives_ten_have_no_valid_number() -> None:
    # 999000001x: weighted sum 9*10+9*9+9*8+1*2 = 245, 245 % 11 = 3 → check 8; find one giving 10.
    for stem in (f"{n:09d}" for n in range(999000000, 999000200)):
        total = sum(int(d) * w for d, w in zip(stem, range(10, 1, -1), strict=True))
        if 11 - total % 11 == 10:
            assert not any(is_valid_nhs_number(stem + str(c)) for c in range(10))
            return
    pytest.fail("no stem with remainder 10 in range")


@pytest.mark.parametrize("bad", ["999787789", "99978778961", "999787789X", "", "٩٩٩٧٨٧٧٨٩٦"])
def test_anything_but_ten_ascii_digits_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="10 digits"):
        normalise_nhs_number(bad)


def test_spaces_and_hyphens_are_normalised_away() -> None:
    assert normalise_nhs_number("999 787 7896") == "9997877896"
    assert normalise_nhs_number("999-787-7896") == "9997877896"


def test_error_messages_never_quote_the_number() -> None:
    with pytest.raises(ValueError, match="check digit") as info:
        normalise_nhs_number("9997877897")
    assert "9997877897" not in str(info.value)


def test_synthetic_numbers_are_valid_and_in_the_999_range() -> None:
    rng = random.Random(3)  # noqa: S311  # synthetic test data, not cryptography
    for _ in range(200):
        n = synthetic_nhs_number(rng)
        assert n.startswith("999")
        assert is_valid_nhs_number(n)


def test_no_two_synthetic_people_share_an_nhs_number() -> None:
    """The demo's stream would otherwise merge strangers: one consent, one disclosure log."""
    families = SyntheticFamilies(seed=1)
    numbers = [families.subject("child")["nhs_number"] for _ in range(3000)]
    assert len(set(numbers)) == len(numbers)


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("DY4 7AA", "DY4 7AA"),
        ("dy47aa", "DY4 7AA"),
        ("WS10 7DE", "WS10 7DE"),
        ("B3 2BJ", "B3 2BJ"),
        ("wv10  6qa", "WV10 6QA"),
        ("EC1A 1BB", "EC1A 1BB"),
        ("W1A 0AX", "W1A 0AX"),
        ("GIR 0AA", "GIR 0AA"),
    ],
)
def test_uk_shaped_postcodes_are_normalised(raw: str, normal: str) -> None:
    assert normalise_postcode(raw) == normal


@pytest.mark.parametrize(
    "bad", ["XX", "DY4", "1DY 7AA", "DY4 7CA", "QY4 7AA", "DY4 77A", "DY47AAA"]
)
def test_postcodes_of_the_wrong_shape_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="UK postcode") as info:
        normalise_postcode(bad)
    assert bad not in str(info.value)


def test_district_and_sector() -> None:
    assert postcode_district("WV10 6QA") == "WV10"
    assert postcode_sector("WV10 6QA") == "WV10 6"
    assert postcode_district("DY4 7AA") == "DY4"


@pytest.mark.parametrize("digit", "0123456789")
def test_one_digit_ten_times_is_a_placeholder_not_an_nhs_number(digit: str) -> None:
    """Each passes modulus 11; taken as a number, every child given it would be one subject."""
    assert not is_valid_nhs_number(digit * 10)
    with pytest.raises(ValueError, match="placeholder"):
        normalise_nhs_number(digit * 10)
