"""Every link of a desk form's error summary goes somewhere on its page: each ``href="#x"``
has an element ``id="x"``. A referral answered since the page was loaded, posted with a field
missing or too long, is answered 409 naming who answered (its form has gone, so a 400 pointing
at #outcome and #summary would point at nothing); a team's form is checked alike, 400 and 409."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from broker.desk import DeskDeps, DeskStore, Flag, children_in
from tests.unit.desk.conftest import SECRET, T0, delivery, sign_in
from tests.unit.webauth.forms import error_summary

Make = Callable[..., tuple[TestClient, DeskDeps]]
HUB = "cog-west-bromwich"
FLAG = "a" * 32
LONG = "x" * 2001


def _links_land(page: str) -> list[str]:
    """The error summary's in-page targets (a refusal with nothing to correct has none),
    each asserted present on ``page``."""
    targets = re.findall(r'href="#([^"]+)"', error_summary(page))
    for target in targets:
        assert f'id="{target}"' in page, f"#{target} is not on the page"
    return targets


def _referral(store: DeskStore) -> None:
    d = delivery("r1", recipient=HUB, type="coordination.referral")
    store.add_delivery(d, children_in(d.view, SECRET), T0)


@pytest.mark.parametrize(
    ("outcome", "summary"), [("", ""), ("closed", ""), ("", "Moved."), ("closed", LONG)]
)
def test_a_hub_outcome_form_not_filled_in_links_to_its_fields(
    make_client: Make, store: DeskStore, outcome: str, summary: str
) -> None:
    _referral(store)
    client, _ = make_client(kind="hub", party=HUB)
    token = sign_in(client)
    form = {"csrf": token, "outcome": outcome, "summary": summary}
    r = client.post("/referral/r1/outcome", data=form)
    assert r.status_code == 400
    assert _links_land(r.text)
    assert set(_links_land(r.text)) <= {"outcome", "summary"}


@pytest.mark.parametrize(
    ("outcome", "summary"),
    [("declined", "Not for us."), ("", ""), ("declined", ""), ("", "x"), ("declined", LONG)],
)
def test_a_referral_answered_since_is_409_naming_who_whatever_was_typed(
    make_client: Make, store: DeskStore, outcome: str, summary: str
) -> None:
    _referral(store)
    sam, _ = make_client(kind="hub", party=HUB)
    token = sign_in(sam)
    assert 'id="outcome-form"' in sam.get("/referral/r1").text
    store.decide(action="closed", reason="Family moved away.", by="kim.ward", at=T0,
                 subject_event="r1")  # fmt: skip
    r = sam.post("/referral/r1/outcome", data={"csrf": token, "outcome": outcome,
                                                 "summary": summary})  # fmt: skip
    assert r.status_code == 409
    assert 'id="outcome-form"' not in r.text
    assert "answered by kim.ward" in error_summary(r.text)
    _links_land(r.text)


def _child_with_flag(store: DeskStore) -> str:
    for eid, sender in (("e1", "wmp"), ("e2", "swbh")):
        d = delivery(eid, sender=sender)
        store.add_delivery(d, children_in(d.view, SECRET), T0)
    [child] = children_in(delivery("x").view, SECRET)
    store.add_flag(
        Flag(
            flag_id=FLAG, party="sandwell-coord", rule="multi-agency",
            title="Rule multi-agency", child=child, event_ids=("e1", "e2"),
            trigger_event_id="e2", raised_at=T0, window_seconds=86400,
        ),
        T0,
    )  # fmt: skip
    return child


_UNFINISHED = [("", ""), ("signpost", ""), ("", "Seen."), ("signpost", LONG)]


@pytest.mark.parametrize(
    ("action", "reason", "settled"),
    [*((a, r, False) for a, r in _UNFINISHED), *((a, r, True) for a, r in _UNFINISHED),
     ("signpost", "Seen.", True)],
)  # fmt: skip
def test_a_team_decision_form_refused_links_to_what_is_on_its_page(
    make_client: Make, store: DeskStore, action: str, reason: str, settled: bool
) -> None:
    child = _child_with_flag(store)
    client, _ = make_client()
    token = sign_in(client)
    if settled:  # by a colleague since the page was loaded
        store.decide(action="no_further_action", reason="Known.", by="kim.ward", at=T0,
                     flag_ids=[FLAG], child=child)  # fmt: skip
    form = {"csrf": token, "action": action, "reason": reason, "flag": FLAG}
    r = client.post(f"/child/{child}/decide", data=form)
    assert r.status_code == (409 if reason == "Seen." and action else 400)
    _links_land(r.text)
