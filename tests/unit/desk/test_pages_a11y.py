"""The desk's pages as assistive technology meets them (WCAG 2.2 AA): a refused form's
problem in an error summary linked to its field, marked on the field and in the title; a
success in a banner that takes the focus; no blank table header; the current page marked in
the bar; a skip link first."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from broker.desk import DeskDeps, DeskStore, Flag, children_in
from tests.unit.desk.conftest import SECRET, delivery, sign_in
from tests.unit.webauth.forms import control_tag, error_summary

Make = Callable[..., tuple[TestClient, DeskDeps]]


def _child(store: DeskStore) -> str:
    d = delivery("e1")
    store.add_delivery(d, children_in(d.view, SECRET), datetime.now(UTC))
    [child] = children_in(d.view, SECRET)
    return child


def _title(page: str) -> str:
    found = re.search(r"<title>(.*?)</title>", page, re.S)
    assert found
    return found.group(1)


def test_a_decision_without_a_reason_is_an_error_linked_to_the_reason(
    make_client: Make, store: DeskStore
) -> None:
    child = _child(store)
    client, _ = make_client()
    token = sign_in(client)
    r = client.post(f"/child/{child}/decide", data={"csrf": token, "action": "signpost",
                                                   "reason": "  "})  # fmt: skip
    assert r.status_code == 400  # drawn again in place, not redirected
    page = r.text
    summary = error_summary(page)
    assert 'role="alert"' in summary
    assert 'tabindex="-1" autofocus' in summary
    assert "There is a problem" in summary
    assert 'href="#reason"' in summary
    assert _title(page).startswith("Error: ")
    reason = control_tag(page, "reason")
    assert 'aria-invalid="true"' in reason
    assert 'aria-describedby="reason-error reason-hint"' in reason
    assert 'id="reason-error"' in page
    assert "aria-invalid" not in control_tag(page, "action")
    assert "notification-banner" not in page
    # Said once: the next page is as before.
    again = client.get(f"/child/{child}").text
    assert "error-summary" not in again
    assert not _title(again).startswith("Error:")


def test_a_recorded_decision_is_a_success_banner_that_takes_the_focus(
    make_client: Make, store: DeskStore
) -> None:
    child = _child(store)
    client, _ = make_client()
    token = sign_in(client)
    r = client.post(f"/child/{child}/decide", data={"csrf": token, "action": "signpost",
                                                   "reason": "Synthetic reason."})  # fmt: skip
    banner = re.search(r'<div class="notification-banner[^"]*"[^>]*>(.*?)</div>', r.text, re.S)
    assert banner
    assert 'role="status"' in banner.group(0)
    assert 'tabindex="-1" autofocus' in banner.group(0)
    assert "Decision recorded: signpost." in banner.group(1)
    assert "error-summary" not in r.text


def test_a_search_by_something_not_an_nhs_number_marks_the_field_and_echoes_nothing(
    make_client: Make, store: DeskStore
) -> None:
    _child(store)
    client, _ = make_client()
    token = sign_in(client)
    r = client.post("/records/search", data={"csrf": token, "nhs_number": "99930802"})
    summary = error_summary(r.text)
    assert 'href="#nhs_number"' in summary
    assert "That NHS number is not valid" in summary
    assert 'aria-invalid="true"' in control_tag(r.text, "nhs_number")
    assert "99930802" not in r.text


@pytest.mark.parametrize(
    ("kind", "party", "tables"),
    [
        ("coordinating_team", "sandwell-coord", ("open-flags",)),
        ("hub", "cog-west-bromwich", ("referrals",)),
        ("coordinating_team", "sandwell-coord", ("records",)),
    ],
)
def test_no_table_has_a_blank_header(
    make_client: Make, store: DeskStore, kind: str, party: str, tables: tuple[str, ...]
) -> None:
    child = _child(store)
    referral = delivery("r1", recipient=party, type="coordination.referral")
    store.add_delivery(referral, children_in(referral.view, SECRET), datetime.now(UTC))
    store.add_flag(Flag(flag_id="f" * 32, party=party, rule="multi-agency", title="Flag",
                        child=child, event_ids=("e1",), trigger_event_id="e1",
                        raised_at=datetime.now(UTC), window_seconds=86400),
                   datetime.now(UTC))  # fmt: skip
    client, _ = make_client(kind=kind, party=party)
    sign_in(client)
    page = client.get("/records" if tables == ("records",) else "/").text
    for table in tables:
        head = page.split(f'<table id="{table}">')[1].split("</thead>")[0]
        cells = re.findall(r"<th>(.*?)</th>", head)
        assert cells
        assert all(re.sub(r"<[^>]+>", "", c).strip() for c in cells), cells
    assert "<th></th>" not in page


def test_the_current_page_is_marked_in_the_bar_and_a_skip_link_comes_first(
    make_client: Make, store: DeskStore
) -> None:
    child = _child(store)
    client, _ = make_client()
    sign_in(client)
    for path, page_of, section in [("/", "/", None), ("/records", "/records", None),
                                   (f"/child/{child}", None, "/"),
                                   ("/record/e1", None, "/records")]:  # fmt: skip
        page = client.get(path).text
        body = page.split("<body", 1)[1].split(">", 1)[1].lstrip()
        assert body.startswith('<a class="skip-link" href="#main">Skip to main content</a>')
        assert '<main id="main"' in page
        current = re.findall(r'<a href="([^"]+)" aria-current="page">', page)
        assert current == ([page_of] if page_of else []), path
        within = re.findall(r'<a href="([^"]+)" aria-current="true">', page)
        assert within == ([section] if section else []), path
