"""What a decision or outcome form not filled in as it must be is told, and which field is at
fault: the choice first, then the reason (missing, or by how much it is too long). A good
choice is not asked for again, nor a reason given."""

from __future__ import annotations

import pytest

from broker.desk._child_pages import MAX_REASON, unfinished

BOTH = "Choose a decision and give a reason (up to 2,000 characters)."


def _check(choice: str, text: str) -> tuple[str, str] | None:
    return unfinished(
        choice,
        ("refer", "signpost"),
        text,
        field="action",
        what="reason",
        choose="Choose a decision",
    )


def test_a_form_filled_in_as_it_must_be_is_not_refused() -> None:
    assert _check("refer", "x" * MAX_REASON) is None


@pytest.mark.parametrize("text", ["a reason", "x" * (MAX_REASON + 1)])
def test_a_choice_not_offered_is_the_field_at_fault_whatever_the_reason(text: str) -> None:
    assert _check("delete", text) == ("Choose a decision.", "action")


def test_no_choice_and_no_reason_asks_for_both() -> None:
    assert _check("", "") == (BOTH, "action")


def test_a_missing_reason_is_prompted_for_and_a_long_one_told_by_how_much() -> None:
    assert _check("refer", "") == ("Give a reason (up to 2,000 characters).", "reason")
    assert _check("refer", "x" * 2001) == (
        "The reason is 2,001 characters; it can be at most 2,000.",
        "reason",
    )
