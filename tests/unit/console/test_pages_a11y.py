"""The console's pages as assistive technology meets them (WCAG 2.2 AA): problems in an error
summary linked to their fields, successes in a banner that takes the focus, the override
queue's controls named by their override, the reason kept on a refused look-up, the chart's
figures as a table, the current page marked in the bar and a skip link first."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.unit.console.conftest import sign_in
from tests.unit.webauth.forms import control_tag, error_summary

PAGES = ("/", "/subjects", "/overrides", "/agreements", "/chains")


def _title(page: str) -> str:
    found = re.search(r"<title>(.*?)</title>", page, re.S)
    assert found
    return found.group(1)


def test_a_refused_review_is_an_error_summary_naming_its_override_and_linked_to_its_field(
    client: TestClient,
) -> None:
    token = sign_in(client)
    r = client.post("/overrides/review", data={"event_id": "e2", "recipient": "school-1",
                                               "csrf": token})  # no finding  # fmt: skip
    page = r.text
    summary = error_summary(page)
    assert 'role="alert"' in summary
    assert 'tabindex="-1" autofocus' in summary  # the focus moves to it, without script
    assert "There is a problem" in summary
    assert 'href="#finding-e2-school-1"' in summary
    assert "Review of event e2 to school-1 not recorded: give justified or not-justified" in summary
    assert _title(page).startswith("Error: Override reviews")
    select = control_tag(page, "finding-e2-school-1")
    assert 'aria-invalid="true"' in select
    assert 'aria-describedby="finding-e2-school-1-error"' in select
    assert re.search(r'<span class="field-error" id="finding-e2-school-1-error">', page)
    assert 'class="notification-banner' not in page  # an error does not look like a success


def test_a_recorded_review_is_a_success_banner_that_takes_the_focus(client: TestClient) -> None:
    token = sign_in(client)
    r = client.post("/overrides/review", data={"event_id": "e2", "recipient": "school-1",
                                               "finding": "justified", "csrf": token})  # fmt: skip
    banner = re.search(r'<div class="notification-banner[^"]*"[^>]*>(.*?)</div>', r.text, re.S)
    assert banner
    assert 'role="status"' in banner.group(0)
    assert 'tabindex="-1" autofocus' in banner.group(0)
    assert "Review of event e2 to school-1 recorded" in banner.group(1)
    assert "error-summary" not in r.text
    assert not _title(r.text).startswith("Error:")


def test_each_review_control_on_the_queue_names_its_override(client: TestClient) -> None:
    sign_in(client)
    page = client.get("/overrides").text
    rows = re.findall(r'<tr data-event="([^"]+)" data-recipient="([^"]+)">(.*?)</tr>', page, re.S)
    pending = [(e, r, body) for e, r, body in rows if "Mark reviewed" in body]
    assert pending
    ids = set()
    for event, recipient, body in pending:
        hidden = f'<span class="visually-hidden"> for event {event} to {recipient}</span>'
        assert f"Mark reviewed{hidden}</button>" in body
        assert f"Finding{hidden}" in body
        assert f"Reference (IG case or ticket; optional){hidden}" in body
        ids.add(f"finding-{event}-{recipient}")
    assert len(ids) == len(pending)  # one id per row's control


def test_a_refused_look_up_keeps_the_reason_and_links_the_missing_field(
    client: TestClient,
) -> None:
    token = sign_in(client)
    r = client.post("/subjects", data={"csrf": token, "nhs_number": "", "given_name": "Sian",
                                       "family_name": "", "dob": "2016-03-04", "postcode": "",
                                       "purpose": "complaint"})  # fmt: skip
    assert r.status_code == 400
    page = r.text
    summary = error_summary(page)
    assert 'href="#family_name"' in summary
    assert "A look-up by name also needs the family name." in summary
    assert _title(page).startswith("Error: Find a child")
    family = control_tag(page, "family_name")
    assert 'aria-invalid="true"' in family
    assert 'aria-describedby="family_name-error"' in family
    assert "aria-invalid" not in control_tag(page, "given_name")
    assert '<option value="complaint" selected>' in page  # the reason chosen, kept
    assert "Sian" not in page  # what was typed is not
    assert "2016-03-04" not in page


def test_a_look_up_without_a_reason_or_a_child_lists_both_problems(client: TestClient) -> None:
    token = sign_in(client)
    r = client.post("/subjects", data={"csrf": token, "purpose": ""})
    summary = error_summary(r.text)
    assert re.findall(r'href="#([a-z_]+)"', summary) == ["purpose", "nhs_number"]
    assert 'aria-invalid="true"' in control_tag(r.text, "purpose")
    assert "selected>" not in r.text.split('id="purpose"')[1].split("</select>")[0]


def test_the_current_page_is_marked_in_the_bar_and_a_skip_link_comes_first(
    client: TestClient,
) -> None:
    sign_in(client)
    for path in PAGES:
        page = client.get(path).text
        body = page.split("<body", 1)[1].split(">", 1)[1].lstrip()
        assert body.startswith('<a class="skip-link" href="#main">Skip to main content</a>')
        assert '<main id="main"' in page
        current = re.findall(r'<a href="([^"]+)" aria-current="page">', page)
        assert current == [path], path
    detail = client.get("/overrides/decision", params={"event": "e2", "recipient": "school-1"})
    assert re.findall(r'<a href="([^"]+)" aria-current="true">', detail.text) == ["/overrides"]


def test_the_decisions_chart_has_its_figures_as_a_table(client: TestClient) -> None:
    sign_in(client)
    page = client.get("/").text
    assert re.search(r'<svg id="decisions-chart"[^>]*aria-describedby="decisions-table"', page)
    table = page.split('<table id="decisions-table">')[1].split("</table>")[0]
    assert "<summary>Decisions per day as a table</summary>" in page
    heads = re.findall(r'<th scope="col">([^<]*)</th>', table)
    assert heads == ["Day", "Shared", "Shared override", "Not shared", "Total"]
    rows = re.findall(r'<tr><th scope="row">[^<]+</th>((?:<td>\d+</td>)+)</tr>', table)
    assert len(rows) == 14
    totals = [list(map(int, re.findall(r"<td>(\d+)</td>", r))) for r in rows]
    assert all(sum(t[:-1]) == t[-1] for t in totals)
    shown = re.search(r'id="decisions-total">(\d+)<', page)
    assert shown
    assert sum(t[-1] for t in totals) == int(shown.group(1)) > 0
