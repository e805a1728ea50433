"""The review form's reference states its limit in a hint the field is described by, has no
maxlength (which would cut it silently), and a refused reference that was wiped says so in the
summary, with a short error beside the field."""

from __future__ import annotations

from fastapi.testclient import TestClient

from broker.audit import AuditKind
from tests.unit.console.conftest import IndexingSink, sign_in
from tests.unit.webauth.forms import control_tag, error_summary, posted_form, value_of

WHICH = "e2-school-1"


def test_the_reference_has_a_hint_it_is_described_by_and_no_maxlength(client: TestClient) -> None:
    sign_in(client)
    page = client.get("/overrides").text
    tag = control_tag(page, f"reference-{WHICH}")
    assert f'aria-describedby="reference-hint-{WHICH}"' in tag
    assert "maxlength" not in tag
    assert f'<span class="hint" id="reference-hint-{WHICH}">Up to 40 letters' in page
    assert "with its case number (e.g. IG-2026-0142)" in page


def test_a_wiped_reference_is_said_removed_and_its_field_error_is_short(client: TestClient) -> None:
    token = sign_in(client)
    form = {"event_id": "e2", "recipient": "school-1", "csrf": token, "finding": "justified",
            "reference": "IG 943 476 5919"}  # fmt: skip
    r = client.post("/overrides/review", data=form)
    assert r.status_code == 400
    summary = error_summary(r.text)
    assert "the reference you typed was removed (it may name a person or hold a number" in summary
    assert "Type it again as the IG case or ticket reference" in summary
    beside = r.text.split(f'id="reference-{WHICH}-error">')[1].split("</span>", 2)
    said = beside[1]
    assert "Up to 40 letters, digits and . _ / : -, with its case number; no NHS or phone" in said
    assert "e2" not in said  # short: no event id, no recipient
    tag = control_tag(r.text, f"reference-{WHICH}")
    assert f'aria-describedby="reference-{WHICH}-error reference-hint-{WHICH}"' in tag


def test_a_reference_with_no_digit_is_wiped_and_the_summary_asks_for_the_case_number(
    client: TestClient, sink: IndexingSink
) -> None:
    """A name written as an identifier (no case number in it) is never logged or drawn back."""
    token = sign_in(client)
    written = len(sink.records)
    form = {"event_id": "e2", "recipient": "school-1", "csrf": token, "finding": "justified",
            "reference": "Jane-Smith"}  # fmt: skip
    r = client.post("/overrides/review", data=form)
    assert r.status_code == 400
    summary = error_summary(r.text)
    assert "the reference you typed was removed (it may name a person" in summary
    assert "which carries its case number, e.g. IG-2026-0142" in summary
    assert value_of(posted_form(r.text, "/overrides/review"), "reference") == [""]
    assert "Jane-Smith" not in r.text
    assert not any(rec.kind == AuditKind.OVERRIDE_REVIEWED for rec in sink.records[written:])


def test_a_wiped_reference_is_said_removed_when_the_finding_was_refused_first(
    client: TestClient,
) -> None:
    """The finding is checked first; the reference it never reached is still not put back,
    and the page says so beside it rather than leaving an empty field unexplained."""
    token = sign_in(client)
    form = {"event_id": "e2", "recipient": "school-1", "csrf": token, "finding": "",
            "reference": "Jane-Smith"}  # fmt: skip
    r = client.post("/overrides/review", data=form)
    assert r.status_code == 400
    summary = error_summary(r.text)
    assert "give justified or not-justified" in summary
    assert "the reference you typed was removed (it may name a person" in summary
    assert value_of(posted_form(r.text, "/overrides/review"), "reference") == [""]
    assert "Jane-Smith" not in r.text
    beside = r.text.split(f'id="reference-{WHICH}-error">')[1].split("</span>", 2)[1]
    assert "with its case number" in beside
