"""Which typed identifiers hold an NHS or telephone number (``holds_nhs_or_telephone_number``):
the rule docs/sdk.md, docs/desk.md and the access-ack schema state."""

from __future__ import annotations

import pytest

from broker.events import holds_nhs_or_telephone_number


@pytest.mark.parametrize(
    "text",
    [
        "555123456789",  # an NHS smartcard (CIS2) user id: twelve digits in a row
        "sds/555123456789",
        "E0012345678",  # ten digits from 00: no NHS or CHI number, nothing anyone dials
        "coord/officer-7",
        "IG-2026-000123",
    ],
)
def test_a_smartcard_id_or_a_ten_digit_run_from_00_is_no_number(text: str) -> None:
    assert not holds_nhs_or_telephone_number(text)


@pytest.mark.parametrize(
    "text",
    [
        "9997672380",  # an NHS number, ten digits in a row
        "ref/9434765919",
        "9434765910",  # a wrong check digit still points at a person
        "0123456789",  # ten from 01: an area's number as dialled
        "07700900123",  # eleven from 0: a UK number as dialled
        "19434765919",  # eleven not from 0: an NHS number with a digit beside it
        "447700900123",  # twelve, from 44: a UK number from abroad
        "077009001234",  # twelve, from 0
        "00447700900123",  # thirteen or more: a number with its dialling code
        "1733582400000",
    ],
)
def test_an_nhs_number_a_telephone_number_or_a_longer_run_is_one(text: str) -> None:
    assert holds_nhs_or_telephone_number(text)


def test_a_smartcard_id_is_a_desk_or_console_account_name() -> None:
    """add-user takes the name an NHS smartcard (CIS2) user id gives, and refuses an NHS number."""
    from broker.errors import UsageError
    from broker.webauth import check_username

    assert check_username("555123456789") == "555123456789"
    with pytest.raises(UsageError):
        check_username("9997672380")
