"""The review form's reference states its limit in a hint the field is described by, has no
maxlength (which would cut it silently), and a refused reference that was wiped says so in the
summary, with a short error beside the field."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.unit.console.conftest import sign_in
from tests.unit.webauth.forms import control_tag, error_summary

WHICH = "e2-school-1"


def test_the_reference_has_a_hint_it_is_described_by_and_no_maxlength(client: TestClient) -> None:
    sign_in(client)
    page = client.get("/overrides").text
    tag = control_tag(page, f"reference-{WHICH}")
    assert f'aria-describedby="reference-hint-{WHICH}"' in tag
    assert "maxlength" not in tag
    assert f'<span class="hint" id="reference-hint-{WHICH}">Up to 40 letters' in page


def test_a_wiped_reference_is_said_removed_and_its_field_error_is_short(client: TestClient) -> None:
    token = sign_in(client)
    form = {"event_id": "e2", "recipient": "school-1", "csrf": token, "finding": "justified",
            "reference": "IG 943 476 5919"}  # fmt: skip
    r = client.post("/overrides/review", data=form)
    assert r.status_code == 400
    summary = error_summary(r.text)
    assert "the reference you typed was removed (it may hold a number about a person)" in summary
    assert "Type it again as the IG case or ticket reference" in summary
    beside = r.text.split(f'id="reference-{WHICH}-error">')[1].split("</span>", 2)
    said = beside[1]
    assert "Up to 40 letters, digits and . _ / : -; no NHS or phone number" in said
    assert "e2" not in said  # short: no event id, no recipient
    tag = control_tag(r.text, f"reference-{WHICH}")
    assert f'aria-describedby="reference-{WHICH}-error reference-hint-{WHICH}"' in tag
