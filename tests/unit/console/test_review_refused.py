"""A review the console refuses for something the officer can put right is drawn again in place
(400, or 409 when the override was reviewed already) on the page it was posted from, with
the error summary and the finding and reference as posted, escaped; they are in that response
only (no session, flash, log or audit record), and the corrected review is recorded. A
reference that could not be logged (a note, a number) is not put back: it may be about a person."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from tests.unit.console.conftest import IndexingSink, sign_in
from tests.unit.webauth.forms import (
    control_tag,
    error_summary,
    nowhere_but_the_page,
    posted_form,
    value_of,
)

WHICH = "e2-school-1"
NOTE = "Amy <b>Hollis</b>, DA"  # a note, not a reference: refused


def _sessions(client: TestClient) -> Any:
    return client.app.state.console.sessions._sessions  # type: ignore[attr-defined]


def _review(token: str, **form: str) -> dict[str, str]:
    return {"event_id": "e2", "recipient": "school-1", "csrf": token, **form}


def test_a_review_with_a_bad_reference_is_the_queue_again_with_the_finding_not_the_reference(
    client: TestClient, sink: IndexingSink
) -> None:
    token = sign_in(client)
    form = _review(token, finding="not-justified", reference=NOTE)
    with capture_logs() as logs:
        r = client.post("/overrides/review", data=form, follow_redirects=False)
    assert r.status_code == 400
    assert "location" not in r.headers
    summary = error_summary(r.text)
    assert 'tabindex="-1" autofocus' in summary
    assert f'href="#reference-{WHICH}"' in summary
    assert "never a note" in summary
    assert r.text.split("<title>")[1].startswith("Error: Override reviews")
    assert 'aria-invalid="true"' in control_tag(r.text, f"reference-{WHICH}")
    assert "Hollis" not in r.text
    assert 'data-next="/overrides"' in r.text
    again = posted_form(r.text, "/overrides/review")
    assert value_of(again, "finding") == ["not-justified"]
    assert value_of(again, "reference") == [""]
    assert value_of(again, "csrf") == [token]
    nowhere_but_the_page([NOTE, "Hollis"], sessions=_sessions(client), logs=logs, location=None)
    assert "Hollis" not in repr([x.data for x in sink.records])  # nor in the audit log
    # The attempt and the queue drawn again are each on record, as the queue's GET is.
    assert [q.data["page"] for q in sink.queries()] == ["overrides.review", "overrides"]
    assert [x for x in sink.records if x.kind.value == "override_reviewed"] == []

    fixed = dict([*[(k, v) for k, v in again if k != "reference"], ("reference", "IG-2026-114")])
    r = client.post("/overrides/review", data=fixed, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/overrides")
    [review] = [x for x in sink.records if x.kind.value == "override_reviewed"]
    assert (review.data["finding"], review.data["reference"]) == ("not_justified", "IG-2026-114")


def test_a_review_refused_on_the_overrides_own_page_draws_that_page_again(
    client: TestClient, sink: IndexingSink
) -> None:
    token = sign_in(client)
    page = client.get("/overrides/decision?event=e2&recipient=school-1").text
    assert value_of(posted_form(page, "/overrides/review"), "page") == ["decision"]
    r = client.post("/overrides/review", data=_review(token, page="decision", reference="IG-7"))
    assert r.status_code == 400
    assert r.text.split("<title>")[1].startswith("Error: Safeguarding override")
    assert f'href="#finding-{WHICH}"' in error_summary(r.text)  # no finding chosen
    again = posted_form(r.text, "/overrides/review")
    assert value_of(again, "finding") == []
    assert value_of(again, "reference") == ["IG-7"]
    assert sink.queries()[-1].data["page"] == "overrides.detail"


@pytest.mark.parametrize("reference", [NOTE, "943 476 5919", "IG/943/476/5919", "07700-900123"])
def test_a_reference_that_could_not_be_logged_is_not_put_back_whatever_was_refused(
    client: TestClient, reference: str
) -> None:
    """Not even when the finding was what was missing: a number or a note about a person is
    drawn back nowhere, as a look-up's NHS number is not."""
    token = sign_in(client)
    r = client.post("/overrides/review", data=_review(token, reference=reference))
    assert r.status_code == 400
    assert value_of(posted_form(r.text, "/overrides/review"), "reference") == [""]
    assert reference not in r.text


def test_a_review_of_an_override_reviewed_already_is_a_conflict(client: TestClient) -> None:
    token = sign_in(client)
    r = client.post("/overrides/review", data=_review(token, finding="justified"))
    assert "recorded in the audit log" in r.text
    r = client.post("/overrides/review", data=_review(token, finding="not-justified"))
    assert r.status_code == 409
    assert "was already reviewed by" in error_summary(r.text)


def test_a_refused_review_fills_no_other_overrides_form(client: TestClient) -> None:
    token = sign_in(client)
    r = client.post("/overrides/review", data={"event_id": "e1", "recipient": "coord",
                                               "finding": "justified", "reference": "IG-7",
                                               "csrf": token})  # fmt: skip
    assert r.status_code == 400
    assert "no safeguarding override" in error_summary(r.text)
    form = posted_form(r.text, "/overrides/review")  # e2's, the queue's only one
    assert value_of(form, "event_id") == ["e2"]
    assert (value_of(form, "finding"), value_of(form, "reference")) == ([], [""])
