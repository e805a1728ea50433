"""The override queue shows what each override shared, a page per override shows its
disclosure-log line, and reviews stay visible: on the overrides page and the child's log."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from broker.audit import AuditRecord
from broker.linkage import Linker
from tests.unit.audit.conftest import CHILD_NHS, PARENT_NHS
from tests.unit.console.conftest import OFFICER, IndexingSink, sign_in

E2 = "/overrides/decision?event=e2&recipient=school-1"


def _cell(page: str, css: str) -> str:
    found = re.search(rf'<td class="{css}">(.*?)</td>', page, re.S)
    assert found, css
    return found.group(1)


def test_the_queue_shows_consent_fields_purpose_and_basis_of_each_override(
    client: TestClient,
) -> None:
    sign_in(client)
    page = client.get("/overrides").text
    row = re.search(r'<tr data-event="e2".*?</tr>', page, re.S)
    assert row
    assert _cell(row.group(0), "consent") == "missing"
    # In the words the child's page uses (test_sent_as.py for consent and transforms).
    assert _cell(row.group(0), "fields") == "<small>name, kind of event</small>"
    assert _cell(row.group(0), "purpose") == "early_help"
    # In words, as the desk and the disclosure log's table show it (JSON keeps the codes).
    assert _cell(row.group(0), "basis") == (
        "Art 6: public task, Art 6(1)(e); Art 9: safeguarding of children and of individuals "
        "at risk, Art 9(2)(g), DPA 2018 Sch 1 para 18"
    )
    assert 'href="/overrides/decision?event=e2&amp;recipient=school-1"' in row.group(0)
    # Details shows the decision-wide union, not one child's scope: the page says so.
    assert "for everyone in the event together" in page
    assert "as the child's disclosure log lists it" not in page


def test_an_overrides_page_shows_its_disclosure_line_and_is_audited(
    client: TestClient, sink: IndexingSink, indexed: list[AuditRecord], linker: Linker
) -> None:
    sign_in(client)
    r = client.get(E2)
    assert r.status_code == 200
    table = re.search(r'<table id="override-detail">.*?</table>', r.text, re.S)
    assert table
    heads = re.findall(r"<th>(.*?)</th>", table.group(0))
    assert heads[:7] == ["When (UTC)", "What", "Event", "From", "To", "Outcome",
                         "Override review"]  # fmt: skip
    assert {"Consent", "Fields shared", "Purpose", "Lawful basis"} <= set(heads)
    assert _cell(table.group(0), "review") == "awaiting review"
    assert _cell(table.group(0), "basis").startswith("Art 6: public task, Art 6(1)(e)")
    assert 'action="/overrides/review"' in r.text
    assert "The decision for everyone in the event together" in r.text
    [view] = [q for q in sink.queries() if q.data["page"] == "overrides.detail"]
    assert view.data["detail"] == {"event_id": "e2", "recipient": "school-1"}
    assert view.subject_keys == (linker.from_nhs_number(CHILD_NHS),)


def test_a_decision_that_is_no_override_has_no_page_and_the_probe_is_audited(
    client: TestClient, sink: IndexingSink
) -> None:
    sign_in(client)
    r = client.get("/overrides/decision?event=9997017463&recipient=coord")
    assert r.status_code == 404
    assert "9997017463" not in r.text
    [probe] = [q for q in sink.queries() if q.data["page"] == "overrides.detail"]
    # No policy here to know the party by: neither typed value is repeated.
    assert probe.data["detail"] == {
        "event_id": "(not an identifier)",
        "recipient": "(not an identifier)",
    }
    assert probe.subject_keys == ()


def test_a_decision_that_is_no_override_is_looked_up_under_its_childrens_keys(
    client: TestClient, sink: IndexingSink, linker: Linker
) -> None:
    """The page says that decision is no override: that is about those children."""
    sign_in(client)
    assert client.get("/overrides/decision?event=e1&recipient=coord").status_code == 404
    [probe] = [q for q in sink.queries() if q.data["page"] == "overrides.detail"]
    assert probe.data["detail"] == {"event_id": "e1", "recipient": "coord"}
    assert set(probe.subject_keys) == {linker.from_nhs_number(n) for n in (CHILD_NHS, PARENT_NHS)}


def test_a_review_posted_is_recorded_under_the_keys_of_the_decision_it_names(
    client: TestClient, sink: IndexingSink, linker: Linker
) -> None:
    """Whether an override or not: the answer (reviewed, no such override) is about them."""
    token = sign_in(client)
    for event, recipient in (("e2", "school-1"), ("e1", "coord"), ("e9", "coord")):
        client.post("/overrides/review", data={"event_id": event, "recipient": recipient,
                                               "finding": "justified", "csrf": token})  # fmt: skip
    attempts = [q for q in sink.queries() if q.data["page"] == "overrides.review"]
    child, parent = linker.from_nhs_number(CHILD_NHS), linker.from_nhs_number(PARENT_NHS)
    assert [set(q.subject_keys) for q in attempts] == [{child}, {child, parent}, set()]


def test_a_review_stays_visible_on_the_overrides_page_the_detail_and_the_childs_log(
    client: TestClient,
) -> None:
    token = sign_in(client)
    client.post("/overrides/review", data={"event_id": "e2", "recipient": "school-1",
                                           "finding": "not-justified", "reference": "IG-2026-114",
                                           "csrf": token})  # fmt: skip
    page = client.get("/overrides").text
    row = re.search(r'<table id="reviewed-overrides">.*?<tr data-event="e2".*?</tr>', page, re.S)
    assert row
    assert _cell(row.group(0), "finding") == "not justified"
    assert _cell(row.group(0), "reviewer") == OFFICER
    assert _cell(row.group(0), "reference") == "IG-2026-114"
    assert f"not justified by {OFFICER} at " in client.get(E2).text
    log = client.post("/subjects", data={"nhs_number": CHILD_NHS, "purpose": "complaint",
                                         "csrf": token}).text  # fmt: skip
    reviews = re.findall(r'<td class="review">(.*?)</td>', log)
    assert [r for r in reviews if r] == [
        next(r for r in reviews if r.startswith(f"not justified by {OFFICER} at "))
    ]
    assert any(r.endswith(", ref IG-2026-114") for r in reviews)
