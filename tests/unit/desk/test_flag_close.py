"""A flag whose records have all been withdrawn is closed as what it is: its own button
records who closed it and why, settles that flag alone, decides nothing about the child and
refers nobody; "refer" is not offered for it."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import structlog.testing
from fastapi.testclient import TestClient

from broker.desk import DeskDeps, DeskStore, Flag, children_in
from broker.errors import SendUnconfirmed
from tests.unit.desk.conftest import SECRET, T0, USER, Clock, FakePublisher, delivery, sign_in

Make = Callable[..., tuple[TestClient, DeskDeps]]
A, B = "a" * 32, "b" * 32


def _child_with_flags(store: DeskStore, *, withdrawable: bool = True) -> str:
    """e1, e2, e3 about one child; flag A on e1 and e2 (both withdrawn), flag B on all three."""
    for eid in ("e1", "e2", "e3"):
        d = delivery(eid)
        store.add_delivery(d, children_in(d.view, SECRET), T0)
    [child] = children_in(delivery("x").view, SECRET)
    for flag_id, ids in ((A, ("e1", "e2")), (B, ("e1", "e2", "e3"))):
        store.add_flag(
            Flag(flag_id=flag_id, party="sandwell-coord", rule=f"rule-{flag_id[0]}",
                 title=f"Rule {flag_id[0]}", child=child, event_ids=ids,
                 trigger_event_id=ids[-1], raised_at=T0, window_seconds=30 * 86400,
                 withdrawable=withdrawable),
            T0,
        )  # fmt: skip
    store.hide(["e1", "e2"], "Consent withdrawn for early help.", T0)
    return child


def _card(page: str, flag_id: str) -> str:
    return page[page.index(f'id="flag-{flag_id}"') :].split("</section>", maxsplit=1)[0]


def _decide_form(page: str) -> str:
    return page[page.index('id="decide"') :].split("</form>", maxsplit=1)[0]


def test_a_withdrawn_flag_is_closed_by_its_own_button_and_refers_nobody(
    make_client: Make, store: DeskStore, publisher: FakePublisher
) -> None:
    child = _child_with_flags(store)
    client, _ = make_client()
    token = sign_in(client)
    page = client.get(f"/child/{child}").text
    assert "Close: its records were withdrawn" in _card(page, A)
    assert "Close: its records were withdrawn" not in _card(page, B)  # a record is left
    # The decision about the child does not offer to settle it.
    assert f'value="{A}"' not in _decide_form(page)
    assert f'value="{B}"' in _decide_form(page)

    with structlog.testing.capture_logs() as logs:
        r = client.post(f"/child/{child}/close-withdrawn", data={"csrf": token, "flag": A})
    assert "closed: its records were withdrawn. No referral was made" in r.text
    assert publisher.events == []
    [decision] = store.decisions(child=child)
    assert (decision.action, decision.decided_by, decision.flag_ids) == (
        "records_withdrawn", USER, (A,),
    )  # fmt: skip
    assert "every record it was raised on was withdrawn" in decision.reason
    assert [f.flag_id for f in store.flags(open_only=True)] == [B]
    logged = [e for e in logs if e["event"] == "desk_decision"]
    assert logged == [
        {"event": "desk_decision", "action": "records_withdrawn", "by": USER, "flags": 1,
         "log_level": "info"}
    ]  # fmt: skip
    card = _card(r.text, A)
    assert 'Closed: <span class="action">its records were withdrawn</span>' in card
    assert "Close: its records were withdrawn" not in card  # no button once closed
    table = r.text[r.text.index('id="decisions"') :].split("</table>")[0]
    assert "closed: its records were withdrawn" in table


def test_only_an_open_flag_of_this_child_with_every_record_withdrawn_closes_so(
    make_client: Make, store: DeskStore
) -> None:
    child = _child_with_flags(store)
    client, _ = make_client()
    token = sign_in(client)
    for flag_id in (B, "c" * 32):  # a record left; no such flag
        r = client.post(f"/child/{child}/close-withdrawn", data={"csrf": token, "flag": flag_id})
        assert "That flag cannot be closed this way" in r.text
    other = delivery("o1", subjects=[{"role": "child", "nhs_number": "9990025312"}])
    store.add_delivery(other, children_in(other.view, SECRET), T0)
    [other_child] = children_in(other.view, SECRET)
    r = client.post(f"/child/{other_child}/close-withdrawn", data={"csrf": token, "flag": A})
    assert "That flag cannot be closed this way" in r.text  # another child's flag
    assert client.post(f"/child/{child}/close-withdrawn", data={"flag": A}).status_code == 403
    assert store.decisions() == []
    client.post(f"/child/{child}/close-withdrawn", data={"csrf": token, "flag": A})
    r = client.post(f"/child/{child}/close-withdrawn", data={"csrf": token, "flag": A})
    assert "That flag cannot be closed this way" in r.text  # closed already
    assert len(store.decisions()) == 1


def test_an_older_services_withdrawn_flag_closes_so_too(
    make_client: Make, store: DeskStore
) -> None:
    """Whether the service takes it back decides only whether it stops a new flag."""
    child = _child_with_flags(store, withdrawable=False)
    client, _ = make_client()
    token = sign_in(client)
    client.post(f"/child/{child}/close-withdrawn", data={"csrf": token, "flag": A})
    assert [f.flag_id for f in store.flags(open_only=True)] == [B]


def test_a_referral_never_settles_a_withdrawn_flag(
    make_client: Make, store: DeskStore, publisher: FakePublisher
) -> None:
    """A page loaded before the withdrawal still ticks it: the referral is refused."""
    child = _child_with_flags(store)
    client, _ = make_client()
    token = sign_in(client)
    form = {"csrf": token, "action": "refer", "reason": "Three agencies.", "flag": [A, B]}
    r = client.post(f"/child/{child}/decide", data=form)
    assert "cannot be settled by a referral" in r.text
    assert publisher.events == []
    assert store.decisions() == []


def test_refer_is_not_offered_once_every_record_about_the_child_is_withdrawn(
    make_client: Make, store: DeskStore
) -> None:
    child = _child_with_flags(store)
    client, _ = make_client()
    sign_in(client)
    options = re.findall(
        r'<option value="(\w*)">', _decide_form(client.get(f"/child/{child}").text)
    )
    assert "refer" in options  # e3 is left
    store.hide(["e3"], "Consent withdrawn for early help.", T0)
    page = client.get(f"/child/{child}").text
    options = re.findall(r'<option value="(\w*)">', _decide_form(page))
    assert options == ["", "signpost", "no_further_action", "escalate"]
    assert "Close: its records were withdrawn" in _card(page, B)  # now B too


def test_closing_a_withdrawn_flag_leaves_the_records_since_the_teams_decision_listed(
    make_client: Make, store: DeskStore, clock: Clock
) -> None:
    """The reviewer's case: signpost at 10:00, a record at 10:05, the closure at 10:10. The
    closure decided nothing about the child: the 10:05 record is still new since 10:00."""
    child = _child_with_flags(store)
    client, _ = make_client()
    token = sign_in(client)
    decided_at = clock()
    client.post(f"/child/{child}/decide",
                data={"csrf": token, "action": "signpost", "reason": "r", "flag": [B]})  # fmt: skip
    clock.advance(minutes=5)
    d = delivery("e4")
    store.add_delivery(d, children_in(d.view, SECRET), clock())
    clock.advance(minutes=5)
    r = client.post(f"/child/{child}/close-withdrawn", data={"csrf": token, "flag": A})
    assert "closed: its records were withdrawn" in r.text
    assert store.new_since_decision() == [(child, 1, decided_at)]
    home = client.get("/").text
    listed = home[home.index('id="new-since-decision"') :].split("</table>")[0]
    assert f'data-child="{child}"' in listed


def test_a_decision_from_a_page_loaded_before_the_withdrawal_does_not_settle_the_flag(
    make_client: Make, store: DeskStore
) -> None:
    """The page promises "A decision about the child does not settle it": a signpost posted
    with the withdrawn flag A still ticked settles B alone, and says so."""
    child = _child_with_flags(store)
    client, _ = make_client()
    token = sign_in(client)
    form = {"csrf": token, "action": "signpost", "reason": "Family supported.", "flag": [A, B]}
    r = client.post(f"/child/{child}/decide", data=form)
    assert "Decision recorded: signpost. It settles 1 flag(s)." in r.text
    assert "1 flag(s) ticked had all their records withdrawn" in r.text
    [decision] = store.decisions(child=child)
    assert decision.flag_ids == (B,)
    assert [f.flag_id for f in store.flags(open_only=True)] == [A]
    assert "Close: its records were withdrawn" in _card(r.text, A)  # still to close


def test_a_referral_the_broker_did_not_confirm_is_not_denied_when_it_cannot_go_again(
    make_client: Make, store: DeskStore, publisher: FakePublisher
) -> None:
    """Sent, unconfirmed, then B's last record withdrawn, then "Send the referral again": it
    is not sent again, and the page must not say nothing was sent: the first attempt may
    have reached the hub, under the event id it names."""
    child = _child_with_flags(store)
    client, _ = make_client()
    token = sign_in(client)
    sent = publisher.publish

    async def unconfirmed(event: Mapping[str, Any]) -> None:
        publisher.events.append(dict(event))  # Kafka took it; the broker did not confirm
        raise SendUnconfirmed("publishing: the commit was under way")

    publisher.publish = unconfirmed  # type: ignore[method-assign]
    form = {"csrf": token, "action": "refer", "reason": "Three agencies.", "flag": [B]}
    r = client.post(f"/child/{child}/decide", data=form)
    assert "The referral may have been sent" in r.text
    [first] = publisher.events
    again = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', r.text))
    publisher.publish = sent  # type: ignore[method-assign]
    store.hide(["e3"], "Consent withdrawn for early help.", T0)

    with structlog.testing.capture_logs() as logs:
        r = client.post(f"/child/{child}/decide", data=again)
    said = r.text[r.text.index('id="error-summary"') :].split("</div>")[0]
    assert "could not be sent again" in said
    assert f"event {first['event_id']}, may have reached the hub" in said
    assert "ask the hub whether it arrived" in said
    assert "Nothing was sent" not in r.text
    assert len(publisher.events) == 1  # nothing more
    assert store.decisions() == []  # not said to be sent: it may not have been
    assert [f.flag_id for f in store.flags(open_only=True)] == [A, B]
    assert [e.get("event_id") for e in logs if e["event"] == "desk_referral_not_sent_again"] == [
        first["event_id"]
    ]


@pytest.mark.parametrize(("kind", "party"), [("hub", "cog-west-bromwich"), ("school", "ormiston")])
def test_a_hub_or_school_desk_has_no_close_withdrawn_page(
    make_client: Make, store: DeskStore, kind: str, party: str
) -> None:
    child = _child_with_flags(store)
    client, _ = make_client(kind=kind, party=party)
    token = sign_in(client)
    r = client.post(f"/child/{child}/close-withdrawn", data={"csrf": token, "flag": A})
    assert r.status_code == 404
    assert store.decisions() == []
    assert [f.flag_id for f in store.flags(open_only=True)] == [A, B]
