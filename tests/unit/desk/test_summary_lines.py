"""A record's free text (the referral's summary, the child's voice) keeps its line breaks on
every page that shows a record (the hub's referral page, the record page, the team's
timeline), escaped, as a decision's reason and an outcome's summary already did: the same
``said`` treatment (``white-space: pre-wrap``), not the cell's ``normal`` that ran the
lines together."""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib import resources

import pytest
from fastapi.testclient import TestClient

from broker.desk import DeskDeps, DeskStore, children_in
from tests.unit.desk.conftest import SECRET, T0, delivery, sign_in

Make = Callable[..., tuple[TestClient, DeskDeps]]
SUMMARY = "Three agencies in a week.\nMum asked for <b>help</b> & a visit."
SHOWN = "Three agencies in a week.\nMum asked for &lt;b&gt;help&lt;/b&gt; &amp; a visit."


def _said_rule() -> str:
    css = resources.files("broker.desk").joinpath("static/desk.css").read_text("utf-8")
    text = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    rules = {k.strip(): v for k, v in re.findall(r"([^{}]+)\{([^{}]*)\}", text)}
    return rules[".said"]


@pytest.mark.parametrize(
    ("kind", "party", "event_type", "page"),
    [
        ("hub", "cog-west-bromwich", "coordination.referral", "/referral/r1"),
        ("hub", "cog-west-bromwich", "voluntary.concern", "/record/r1"),
        ("coordinating_team", "sandwell-coord", "police.child_concern", "/child/{child}"),
    ],
)
def test_a_summary_keeps_its_line_breaks_escaped(
    make_client: Make, store: DeskStore, kind: str, party: str, event_type: str, page: str
) -> None:
    record = delivery("r1", recipient=party, type=event_type, summary=SUMMARY,
                      child_voice="I like school.\nI miss my dad.")  # fmt: skip
    [child] = children_in(record.view, SECRET)
    store.add_delivery(record, [child], T0)
    client, _ = make_client(kind=kind, party=party)
    sign_in(client)
    html = client.get(page.format(child=child)).text
    summary = re.search(r'<dd data-field="summary"([^>]*)>(.*?)</dd>', html, re.S)
    assert summary, "no summary shown"
    assert 'class="said"' in summary.group(1)
    assert summary.group(2) == SHOWN
    voice = re.search(r'<dd data-field="child_voice"([^>]*)>', html)
    assert voice
    assert 'class="said"' in voice.group(1)
    assert "<b>help" not in html
    assert "white-space: pre-wrap" in _said_rule()
