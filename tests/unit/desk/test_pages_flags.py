"""A child's flags on the timeline: what each counted, what triggered it, the window it
looked at, and which decision settled it; a decision settles the flags ticked on its form."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from broker.desk import DeskDeps, DeskStore, Flag, children_in
from tests.unit.desk.conftest import SECRET, T0, Clock, FakePublisher, delivery, sign_in

Make = Callable[..., tuple[TestClient, DeskDeps]]


def _records(store: DeskStore) -> str:
    """e1 (police, oldest), e2 (A&E), e3 (school, newest) about one child; its key."""
    for eid, sender, day in (("e1", "wmp", 1), ("e2", "swbh", 3), ("e3", "school-146201", 5)):
        d = delivery(eid, sender=sender, occurred_at=f"2026-11-0{day}T10:00:00Z")
        store.add_delivery(d, children_in(d.view, SECRET), T0)
    [child] = children_in(delivery("x").view, SECRET)
    return child


def _flag(child: str, flag_id: str, rule: str, event_ids: tuple[str, ...], days: int) -> Flag:
    return Flag(
        flag_id=flag_id, party="sandwell-coord", rule=rule, title=f"Rule {rule}", child=child,
        event_ids=event_ids, trigger_event_id=event_ids[-1], raised_at=T0,
        window_seconds=days * 86400,
    )  # fmt: skip


def test_a_decision_from_a_timeline_reached_without_a_flag_settles_the_ticked_flags(
    make_client: Make, store: DeskStore
) -> None:
    """Every open flag of the child is ticked by default; one left unticked stays open."""
    child = _records(store)
    a, b = "a" * 32, "b" * 32
    store.add_flag(_flag(child, a, "multi-agency", ("e1", "e2", "e3"), 90), T0)
    store.add_flag(_flag(child, b, "domestic-abuse-repeat", ("e1", "e2"), 30), T0)
    client, _ = make_client()
    token = sign_in(client)
    page = client.get(f"/child/{child}").text  # from a link without ?flag=
    ticked = re.findall(r'name="flag" value="(\w+)" checked', page)
    assert sorted(ticked) == [a, b]
    form = {"csrf": token, "action": "signpost", "reason": "Universal services.", "flag": [a, b]}
    r = client.post(f"/child/{child}/decide", data=form)
    assert "It settles 2 flag(s)." in r.text
    assert store.flags(open_only=True) == []
    [d] = store.decisions(child=child)
    assert sorted(d.flag_ids) == [a, b]


def test_a_flag_left_unticked_stays_open_and_each_flag_shows_its_own_decision(
    make_client: Make, store: DeskStore
) -> None:
    child = _records(store)
    a, b = "a" * 32, "b" * 32
    store.add_flag(_flag(child, a, "multi-agency", ("e1", "e2", "e3"), 90), T0)
    store.add_flag(_flag(child, b, "domestic-abuse-repeat", ("e1", "e2"), 30), T0)
    client, _ = make_client()
    token = sign_in(client)
    form = {"csrf": token, "action": "escalate", "reason": "Three agencies.", "flag": a}
    client.post(f"/child/{child}/decide", data=form)
    assert [f.flag_id for f in store.flags(open_only=True)] == [b]
    page = client.get(f"/child/{child}").text
    card_a = page[page.index(f'id="flag-{a}"') :].split("</section>")[0]
    card_b = page[page.index(f'id="flag-{b}"') :].split("</section>")[0]
    assert "Decided:" in card_a
    assert "escalate" in card_a
    assert "Three agencies." in card_a
    assert "Awaiting a decision" in card_b
    assert re.findall(r'name="flag" value="(\w+)" checked', page) == [b]  # only the open one


def test_the_flag_shows_its_records_oldest_first_the_trigger_marked_and_its_window(
    make_client: Make, store: DeskStore
) -> None:
    child = _records(store)
    flag = "c" * 32
    store.add_flag(_flag(child, flag, "domestic-abuse-repeat", ("e1", "e2"), 30), T0)
    client, _ = make_client()
    sign_in(client)
    page = client.get(f"/child/{child}?flag={flag}").text
    card = page[page.index(f'id="flag-{flag}"') :].split("</section>")[0]
    assert "window: 30 days" in card
    listed = re.findall(r'<li data-event="(\w+)"( class="trigger")?', card)
    assert listed == [("e1", ""), ("e2", ' class="trigger"')]  # oldest first; e3 not counted
    assert card.count("triggered the flag") == 1
    # On the timeline too: e2 triggered it, e1 was counted, e3 was not.
    for eid, mark in (("e1", "Counted by"), ("e2", "Triggered"), ("e3", None)):
        article = page[page.index(f'id="record-{eid}"') :].split("</article>")[0]
        assert (mark in article) if mark else ("flag-mark" not in article)


def test_a_flag_stored_before_the_window_was_kept_says_so(
    make_client: Make, store: DeskStore
) -> None:
    """A flag an older desk stored has no window or trigger: the page does not invent them."""
    child = _records(store)
    store.add_flag(_flag(child, "d" * 32, "multi-agency", ("e1", "e2", "e3"), 90), T0)
    store._q("UPDATE desk_flags SET trigger_event_id = NULL, window_seconds = NULL")
    client, _ = make_client()
    sign_in(client)
    page = client.get(f"/child/{child}").text
    assert "window: not recorded (stored by a desk older than 2026-12-06)" in page
    assert "triggered the flag" not in page


def test_open_flag_links_name_their_flag_for_screen_readers(
    make_client: Make, store: DeskStore
) -> None:
    child = _records(store)
    for n, rule in enumerate(("multi-agency", "need-level-4")):
        f = _flag(child, str(n) * 32, rule, ("e1",), 1)
        store.add_flag(f.model_copy(update={"raised_at": T0 + timedelta(hours=n)}), T0)
    client, _ = make_client()
    sign_in(client)
    home = client.get("/").text
    names = re.findall(r'>Open the timeline<span class="visually-hidden">([^<]+)</span></a>', home)
    assert names == [
        " for the flag “Rule multi-agency” fired 2026-11-23 09:00 GMT",
        " for the flag “Rule need-level-4” fired 2026-11-23 10:00 GMT",
    ]


def test_a_flag_whose_records_are_all_withdrawn_says_so_on_the_timeline_and_home_page(
    make_client: Make, store: DeskStore
) -> None:
    """The flag service said it takes such a flag back (``withdrawable``): the team is told
    it no longer stops a new flag, and a flag with a record left says nothing of the kind."""
    child = _records(store)
    a, b = "a" * 32, "b" * 32
    taken_back = _flag(child, a, "domestic-abuse-repeat", ("e1", "e2"), 30)
    store.add_flag(taken_back.model_copy(update={"withdrawable": True}), T0)
    store.add_flag(_flag(child, b, "multi-agency", ("e1", "e2", "e3"), 90), T0)
    store.hide(["e1", "e2"], "Consent withdrawn for early help on 2026-11-07 10:00 GMT.", T0)
    assert [f.withdrawn for f in store.flags()] == [True, False]
    client, _ = make_client()
    sign_in(client)
    page = client.get(f"/child/{child}").text
    card_a = page[page.index(f'id="flag-{a}"') :].split("</section>")[0]
    card_b = page[page.index(f'id="flag-{b}"') :].split("</section>")[0]
    assert "Every record this flag was raised on has since been withdrawn" in card_a
    assert "no longer stops a new flag under this rule" in card_a
    assert "withdrawn" not in card_b.replace("no longer shown (consent withdrawn)", "")
    home = client.get("/").text
    row_a = home[home.index(f'data-flag="{a}"') :].split("</tr>")[0]
    row_b = home[home.index(f'data-flag="{b}"') :].split("</tr>")[0]
    assert "its records have all been withdrawn (consent withdrawn): it no longer stops" in row_a
    assert "withdrawn" not in row_b


def test_an_older_services_flag_whose_records_are_withdrawn_still_stops_a_flag_till_its_window_ends(
    make_client: Make, store: DeskStore
) -> None:
    """The reviewer's case: a flag raised before the service kept a fire's records still
    counts against its rule after its records are withdrawn, so the desk must not say
    otherwise; it names when the window ends."""
    child = _records(store)
    old = "c" * 32
    store.add_flag(_flag(child, old, "domestic-abuse-repeat", ("e1", "e2"), 30), T0)
    store.hide(["e1", "e2"], "Consent withdrawn for early help on 2026-11-07 10:00 GMT.", T0)
    [flag] = store.flags()
    assert (flag.withdrawn, flag.withdrawable) == (True, False)
    client, _ = make_client()
    sign_in(client)
    page = client.get(f"/child/{child}").text
    card = page[page.index(f'id="flag-{old}"') :].split("</section>")[0]
    assert "Every record this flag was raised on has since been withdrawn" in card
    assert "no longer stops" not in card
    assert (
        "still stops a new flag under this rule for records that happened before"
        " 2026-12-23 09:00 GMT, the end of its window" in card
    )
    home = client.get("/").text
    row = home[home.index(f'data-flag="{old}"') :].split("</tr>")[0]
    assert "it still stops a new flag until its window ends" in row
    assert "no longer stops" not in row


def test_records_received_after_a_decision_show_on_the_home_page_until_decided_again(
    make_client: Make, store: DeskStore, clock: Clock
) -> None:
    """The reviewer's case: a flag decided "no further action", then two more incidents
    (no new flag within the window): the home page says so and links to the child. A
    withdrawn record does not count; a new decision clears the line."""
    child = _records(store)
    a = "a" * 32
    store.add_flag(_flag(child, a, "domestic-abuse-repeat", ("e1", "e2"), 30), T0)
    client, _ = make_client()
    token = sign_in(client)
    home = client.get("/").text
    assert 'id="no-new-since"' in home  # nothing decided yet: the open flag lists the child
    decide = {"csrf": token, "action": "no_further_action", "reason": "Known.", "flag": a}
    client.post(f"/child/{child}/decide", data=decide)
    # Decided at T0 + 1 hour (the clock); e3 came before it, these after.
    for eid, minutes in (("e4", 65), ("e5", 66), ("e6", 67)):
        d = delivery(eid, occurred_at="2026-11-23T09:00:00Z")
        store.add_delivery(d, children_in(d.view, SECRET), T0 + timedelta(minutes=minutes))
    store.hide(["e6"], "Consent withdrawn.", T0 + timedelta(minutes=68))
    home = client.get("/").text
    [row] = re.findall(r'<tr class="new-since" data-child="(\w+)">\s*<td>([^<]*)</td>', home)
    assert row[0] == child
    assert row[1].startswith("2 new records since the decision on ")
    assert f'href="/child/{child}"' in home
    again = {"csrf": token, "action": "signpost", "reason": "Seen the new incidents."}
    clock.advance(hours=1)
    client.post(f"/child/{child}/decide", data=again)
    assert 'data-child="' not in client.get("/").text.split('id="referrals-sent"')[0]


def test_a_hubs_outcome_to_the_teams_referral_is_no_new_record_since_the_decision(
    make_client: Make, store: DeskStore
) -> None:
    """The referral's answer shows under "Referrals sent", not as a reason to decide again
    about the child; a record an agency sends after it still lists the child."""
    child = _records(store)
    client, _ = make_client()
    token = sign_in(client)
    client.post(f"/child/{child}/decide", data={"csrf": token, "action": "refer", "reason": "ok"})
    [d] = store.decisions(child=child)
    outcome = delivery("o1", type="coordination.referral_outcome", sender="cog-west-bromwich",
                       reference=d.published_event, outcome="support_offered")  # fmt: skip
    # Decided at T0 + 1 hour (the clock); these after.
    store.add_delivery(outcome, children_in(outcome.view, SECRET), T0 + timedelta(minutes=65))
    home = client.get("/").text
    assert "support offered" in home
    none = home.split('id="no-new-since">')[1].split("</p>")[0]
    assert "any hub's offer of support answering" in none  # else it says none arrived
    assert "the latest outcome shows under Referrals sent" in none
    e4 = delivery("e4", occurred_at="2026-11-23T09:00:00Z")
    store.add_delivery(e4, children_in(e4.view, SECRET), T0 + timedelta(minutes=66))
    home = client.get("/").text
    [row] = re.findall(r'<tr class="new-since" data-child="(\w+)">\s*<td>([^<]*)</td>', home)
    assert row[0] == child
    assert row[1].startswith("1 new record since the decision on ")


@pytest.mark.parametrize("outcome", ["declined", "closed"])
def test_a_hub_declining_or_closing_the_teams_referral_is_a_new_record_since_the_decision(
    make_client: Make, store: DeskStore, outcome: str
) -> None:
    """The child's need is the team's to decide about again, and the answer's summary may
    say why: the home page lists the child, and does not say no record has arrived."""
    child = _records(store)
    client, _ = make_client()
    token = sign_in(client)
    client.post(f"/child/{child}/decide", data={"csrf": token, "action": "refer", "reason": "ok"})
    [d] = store.decisions(child=child)
    answer = delivery("o1", type="coordination.referral_outcome", sender="cog-west-bromwich",
                      reference=d.published_event, outcome=outcome)  # fmt: skip
    store.add_delivery(answer, children_in(answer.view, SECRET), T0 + timedelta(minutes=65))
    home = client.get("/").text
    [row] = re.findall(r'<tr class="new-since" data-child="(\w+)">\s*<td>([^<]*)</td>', home)
    assert row[0] == child
    assert row[1].startswith("1 new record since the decision on ")
    assert 'id="no-new-since"' not in home


def test_when_only_flagged_children_have_new_records_the_page_does_not_say_none_arrived(
    make_client: Make, store: DeskStore
) -> None:
    """A record after the decision, and an open flag on the child: the flag lists the child,
    and the "None" line says so instead of saying that no record has arrived."""
    child = _records(store)
    client, _ = make_client()
    token = sign_in(client)
    client.post(
        f"/child/{child}/decide", data={"csrf": token, "action": "signpost", "reason": "ok"}
    )
    e4 = delivery("e4", occurred_at="2026-11-23T09:00:00Z")
    store.add_delivery(e4, children_in(e4.view, SECRET), T0 + timedelta(minutes=65))
    store.add_flag(_flag(child, "a" * 32, "multi-agency", ("e1", "e2", "e4"), 90), T0)
    home = client.get("/").text
    assert 'class="new-since"' not in home
    none = home.split('id="no-new-since">')[1].split("</p>")[0]
    assert "no record about a child has arrived" not in none
    assert "the one child with records received since the team's decision" in none
    assert "listed by a flag awaiting a decision" in none


def test_a_flag_settled_since_the_page_loaded_is_not_settled_again(
    make_client: Make, store: DeskStore, publisher: FakePublisher
) -> None:
    """Two tabs (or two people) settle one flag: the second form is drawn again (409), saying
    who settled it, when and how; nothing recorded or sent."""
    child = _records(store)
    a = "a" * 32
    store.add_flag(_flag(child, a, "multi-agency", ("e1", "e2", "e3"), 90), T0)
    client, _ = make_client()
    token = sign_in(client)
    first = {
        "csrf": token,
        "action": "no_further_action",
        "reason": "Known to services.",
        "flag": a,
    }
    assert "It settles 1 flag(s)." in client.post(f"/child/{child}/decide", data=first).text
    second = {"csrf": token, "action": "refer", "reason": "Needs a hub.", "flag": a}
    r = client.post(f"/child/{child}/decide", data=second)
    assert r.status_code == 409
    said = html.unescape(r.text)
    assert "The flag “Rule multi-agency” was settled by kim.ward at" in said
    assert "(no further action) after this page was loaded." in said
    assert "Nothing was recorded or sent" in said
    assert "Needs a hub." in r.text  # the form as posted
    assert [d.action for d in store.decisions(child=child)] == ["no_further_action"]
    assert publisher.events == []
