"""What a decision or outcome form not filled in as it must be is told: one error per field at
fault (GOV.UK's error summary), the choice's first, each naming its own field; a good choice is
not asked for again, nor a good reason. Drawn on the page, each missing field is marked invalid
and described by its own message."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from broker.desk import DeskDeps, DeskStore, children_in
from broker.desk._form_text import MAX_REASON, unfinished
from tests.unit.desk.conftest import SECRET, delivery, sign_in
from tests.unit.webauth.forms import control_tag, error_summary

Make = Callable[..., tuple[TestClient, DeskDeps]]
CHOOSE = ("Choose a decision.", "action")
GIVE = ("Give a reason (up to 2,000 characters).", "reason")


def _check(choice: str, text: str) -> list[tuple[str, str | None]]:
    wrong = unfinished(
        choice,
        ("refer", "signpost"),
        text,
        field="action",
        what="reason",
        choose="Choose a decision",
    )
    return [(e.text, e.field) for e in wrong]


def test_a_form_filled_in_as_it_must_be_is_not_refused() -> None:
    assert _check("refer", "x" * MAX_REASON) == []


def test_a_choice_not_offered_with_a_good_reason_asks_only_for_the_choice() -> None:
    assert _check("delete", "a reason") == [CHOOSE]


def test_no_choice_and_no_reason_is_one_error_for_each_field() -> None:
    assert _check("", "") == [CHOOSE, GIVE]


def test_no_choice_and_a_long_reason_says_both_each_at_its_field() -> None:
    assert _check("", "x" * 2001) == [
        CHOOSE,
        ("The reason is 2,001 characters; it can be at most 2,000.", "reason"),
    ]


def test_a_missing_reason_is_prompted_for_and_a_long_one_told_by_how_much() -> None:
    assert _check("refer", "") == [GIVE]
    assert _check("refer", "x" * 2001) == [
        ("The reason is 2,001 characters; it can be at most 2,000.", "reason")
    ]


def _error_of(page: str, field: str) -> str:
    """The message beside ``field`` (its ``<field>-error`` span)."""
    found = re.search(
        rf'<span class="field-error" id="{field}-error">(.*?)</span>(.*?)</span>', page
    )
    assert found, f"no error beside {field}"
    return found.group(2)


@pytest.mark.parametrize(
    ("kind", "party", "page", "fields"),
    [
        ("coordinating_team", "sandwell-coord", "child", ("action", "reason")),
        ("hub", "cog-west-bromwich", "referral", ("outcome", "summary")),
    ],
)
def test_an_empty_form_marks_each_field_with_its_own_error_linked_from_the_summary(
    make_client: Make, store: DeskStore, kind: str, party: str, page: str,
    fields: tuple[str, str],
) -> None:  # fmt: skip
    kind_of = "coordination.referral" if kind == "hub" else "police.child_concern"
    record = delivery("r1", recipient=party, type=kind_of)
    [child] = children_in(record.view, SECRET)
    store.add_delivery(record, [child], datetime.now(UTC))
    client, _ = make_client(kind=kind, party=party)
    token = sign_in(client)
    action = f"/child/{child}/decide" if page == "child" else "/referral/r1/outcome"
    r = client.post(action, data={"csrf": token})
    assert r.status_code == 400
    summary = error_summary(r.text)
    choice, text = fields
    hint = f"{text}-hint"
    assert summary.count("<li>") == 2
    assert f'href="#{choice}"' in summary
    assert f'href="#{text}"' in summary
    assert 'aria-invalid="true"' in control_tag(r.text, choice)
    assert f'aria-describedby="{choice}-error"' in control_tag(r.text, choice)
    assert 'aria-invalid="true"' in control_tag(r.text, text)
    assert f'aria-describedby="{text}-error {hint}"' in control_tag(r.text, text)
    assert "Choose a" in _error_of(r.text, choice)
    assert "Give a" in _error_of(r.text, text)
    assert "Give a" not in _error_of(r.text, choice)
