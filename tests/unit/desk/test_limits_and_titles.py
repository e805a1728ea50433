"""A reason or summary states its limit in a hint it is described by, has no maxlength (which
cut it silently at 2,000), and one over the limit is refused saying by how much, drawn back in
full. The pages for something not there are titled for it, not "Refused". The stylesheet keeps
a not-sent page's words as written and wraps them, and a flag's records, at 320 pixels."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources

import pytest
from fastapi.testclient import TestClient

from broker.desk import DeskDeps, DeskStore, children_in
from tests.unit.desk.conftest import SECRET, FakePublisher, delivery, sign_in
from tests.unit.webauth.forms import control_tag, error_summary

Make = Callable[..., tuple[TestClient, DeskDeps]]


def _title(page: str) -> str:
    return page.split("<title>", 1)[1].split("</title>", 1)[0]


def test_the_reason_has_a_hint_and_no_maxlength_and_too_long_says_by_how_much(
    make_client: Make, store: DeskStore
) -> None:
    record = delivery("e1")
    [child] = children_in(record.view, SECRET)
    store.add_delivery(record, [child], datetime.now(UTC))
    client, _ = make_client()
    token = sign_in(client)
    page = client.get(f"/child/{child}").text
    tag = control_tag(page, "reason")
    assert "maxlength" not in tag
    assert 'aria-describedby="reason-hint"' in tag
    assert '<span class="hint" id="reason-hint">Up to 2,000 characters</span>' in page
    reason = "y" * 2120
    r = client.post(f"/child/{child}/decide", data={"csrf": token, "action": "signpost",
                                                   "reason": reason})  # fmt: skip
    assert r.status_code == 400
    assert "The reason is 2,120 characters; it can be at most 2,000." in error_summary(r.text)
    assert "Choose a decision" not in error_summary(r.text)
    assert reason in r.text  # drawn back in full
    assert store.decisions() == []


def test_the_summary_has_a_hint_and_too_long_says_by_how_much(
    make_client: Make, store: DeskStore
) -> None:
    referral = delivery("r1", recipient="cog-west-bromwich", type="coordination.referral")
    store.add_delivery(referral, children_in(referral.view, SECRET), datetime.now(UTC))
    client, _ = make_client(kind="hub", party="cog-west-bromwich")
    token = sign_in(client)
    page = client.get("/referral/r1").text
    tag = control_tag(page, "summary")
    assert "maxlength" not in tag
    assert 'aria-describedby="summary-hint"' in tag
    summary = "z" * 2001
    r = client.post("/referral/r1/outcome", data={"csrf": token, "outcome": "declined",
                                                 "summary": summary})  # fmt: skip
    assert r.status_code == 400
    assert "The summary is 2,001 characters; it can be at most 2,000." in error_summary(r.text)
    assert summary in r.text


@pytest.mark.parametrize(
    ("kind", "path", "title"),
    [
        ("coordinating_team", "/record/nope", "Record not found"),
        ("coordinating_team", "/child/" + "0" * 32, "Child not found"),
        ("coordinating_team", "/flag/nope", "Flag not found"),
        ("hub", "/referral/nope", "Referral not found"),
        ("school", "/notice/nope", "Notice not found"),
    ],
)
def test_a_page_that_is_not_there_is_titled_for_it_not_refused(
    make_client: Make, kind: str, path: str, title: str
) -> None:
    client, _ = make_client(kind=kind)
    sign_in(client)
    r = client.get(path)
    assert r.status_code == 404
    assert _title(r.text).startswith(f"{title} ·")
    assert re.search(rf"<h1>{title}</h1>", r.text)
    assert "Refused" not in _title(r.text)


def test_the_stylesheet_keeps_written_words_as_written_and_wraps_them_at_320_pixels() -> None:
    css = resources.files("broker.desk").joinpath("static/desk.css").read_text("utf-8")
    text = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    rules = {k.strip(): v for k, v in re.findall(r"([^{}]+)\{([^{}]*)\}", text)}
    written = rules["blockquote#written"]
    assert "white-space: pre-wrap" in written
    assert "overflow-wrap: anywhere" in written
    assert "overflow-wrap: anywhere" in rules["ol.flag-records li"]


def test_a_line_break_posted_as_cr_lf_counts_once_and_is_kept_as_lf(
    make_client: Make, store: DeskStore, publisher: FakePublisher
) -> None:
    """A browser posts each line break as CR LF: a reason of 2,000 characters with its line
    breaks is taken, sent and recorded with LF line breaks."""
    record = delivery("e1")
    [child] = children_in(record.view, SECRET)
    store.add_delivery(record, [child], datetime.now(UTC))
    client, _ = make_client()
    token = sign_in(client)
    lines = ["x" * 99] * 20  # 20 lines of 99 and 19 line breaks: 1,999 characters as written
    typed = "\r\n".join(lines)
    assert len(typed) > 2000
    r = client.post(f"/child/{child}/decide", data={"csrf": token, "action": "refer",
                                                   "reason": typed})  # fmt: skip
    assert "sent through the broker" in r.text, error_summary(r.text)
    [d] = store.decisions()
    assert d.reason == "\n".join(lines)
    [event] = publisher.events
    assert "\r" not in event["summary"]


def test_a_summary_posted_with_cr_lf_counts_each_line_break_once(
    make_client: Make, store: DeskStore, publisher: FakePublisher
) -> None:
    referral = delivery("r1", recipient="cog-west-bromwich", type="coordination.referral")
    store.add_delivery(referral, children_in(referral.view, SECRET), datetime.now(UTC))
    client, _ = make_client(kind="hub", party="cog-west-bromwich")
    token = sign_in(client)
    lines = ["y" * 99] * 20
    form = {"csrf": token, "outcome": "support_offered", "summary": "\r\n".join(lines)}
    r = client.post("/referral/r1/outcome", data=form)
    assert "Outcome support offered sent" in r.text, error_summary(r.text)
    [d] = store.decisions(subject_event="r1")
    assert d.reason == "\n".join(lines)
    assert publisher.events[0]["summary"] == "\n".join(lines)
