"""The desk's pages over a real store: acks before data, decisions, referrals, outcomes,
Encompass deadlines; CSRF and sign-in as on the console."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog.testing
from fastapi.testclient import TestClient

from broker.desk import DeskDeps, DeskStore, Flag, children_in
from tests.unit.desk.conftest import (
    SECRET,
    T0,
    USER,
    Clock,
    FakeAcks,
    FakePublisher,
    delivery,
    sign_in,
)

Make = Callable[..., tuple[TestClient, DeskDeps]]


def _child(store: DeskStore, *event_ids: str) -> str:
    for eid in event_ids:
        d = delivery(eid)
        store.add_delivery(d, children_in(d.view, SECRET), datetime.now(UTC))
    [child] = children_in(delivery("x").view, SECRET)
    return child


def test_every_page_needs_a_session_and_answers_with_a_strict_csp(make_client: Make) -> None:
    client, _ = make_client()
    r = client.get("/", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/login")
    r = client.get("/login")
    csp = r.headers["content-security-policy"]
    assert csp.startswith("default-src 'none'; script-src 'self'; connect-src 'self';")
    assert "unsafe" not in csp  # no inline script, no eval
    assert "<script" not in r.text  # only a signed-in page has the timeout warning's


def test_the_timeline_is_acknowledged_by_the_signed_in_person_before_it_shows(
    make_client: Make, store: DeskStore, acks: FakeAcks
) -> None:
    child = _child(store, "e1", "e2")
    client, _ = make_client()
    sign_in(client)
    page = client.get(f"/child/{child}")
    assert page.status_code == 200
    assert "Ruby" in page.text
    assert "Hart" in page.text
    assert sorted(acks.sent) == [("e1", USER, "early_help"), ("e2", USER, "early_help")]


def test_no_ack_no_data(make_client: Make, store: DeskStore, acks: FakeAcks) -> None:
    child = _child(store, "e1")
    client, _ = make_client()
    sign_in(client)
    acks.down = True
    page = client.get(f"/child/{child}")
    assert page.status_code == 503
    assert "Ruby" not in page.text
    # Titled for what failed, as an error, not "Refused" (nobody refused anything).
    assert "<title>Error: Not shown: the broker did not confirm · " in page.text
    assert "<h1>Not shown: the broker did not confirm</h1>" in page.text


def test_a_page_that_names_nothing_here_is_not_titled_as_an_error(
    make_client: Make, store: DeskStore
) -> None:
    """Only a failure (the broker not confirming) says "Error:"; a page that is not there
    says so and no more."""
    client, _ = make_client()
    sign_in(client)
    for path, title in (("/flag/f404", "Flag not found"), ("/child/bad%20id", "Page not found")):
        page = client.get(path)
        assert page.status_code == 404
        assert f"<title>{title} · " in page.text


def test_a_household_flag_shows_and_acknowledges_the_siblings_records_behind_it(
    make_client: Make, store: DeskStore, acks: FakeAcks
) -> None:
    child = _child(store, "e1")
    sibling = {"role": "child", "nhs_number": "9990025312", "given_name": "Leo",
               "family_name": "Hart", "dob": "2018-05-02", "postcode": "B70 8NR"}  # fmt: skip
    d = delivery("s1", subjects=[sibling])
    store.add_delivery(d, children_in(d.view, SECRET), datetime.now(UTC))
    unrelated = delivery("u1", subjects=[{**sibling, "nhs_number": "9995754649"}])
    store.add_delivery(unrelated, children_in(unrelated.view, SECRET), datetime.now(UTC))
    flag = Flag(flag_id="f" * 32, party="sandwell-coord", rule="household-domestic-abuse",
                title="Domestic abuse at the address", child=child, event_ids=("e1", "s1"),
                trigger_event_id="s1", raised_at=T0, window_seconds=30 * 86400,
                household="h" * 32)  # fmt: skip
    store.add_flag(flag, T0)
    client, _ = make_client()
    sign_in(client)
    page = client.get(f"/child/{child}")
    assert page.status_code == 200
    assert 'id="household"' in page.text
    assert "Leo" in page.text
    assert sorted(acks.sent) == [("e1", USER, "early_help"), ("s1", USER, "early_help")]
    # Without a household flag a child's page shows the child's records only.
    acks.sent.clear()
    page = client.get(f"/child/{children_in(unrelated.view, SECRET)[0]}")
    assert 'id="household"' not in page.text
    assert [a[0] for a in acks.sent] == ["u1"]


def test_a_hidden_record_shows_its_reason_not_its_content_and_is_not_acknowledged(
    make_client: Make, store: DeskStore, acks: FakeAcks, clock: Clock
) -> None:
    child = _child(store, "e1", "e2")
    store.hide(["e1"], "Consent withdrawn for early help.", clock())
    client, _ = make_client()
    sign_in(client)
    page = client.get(f"/child/{child}")
    assert "Hidden: Consent withdrawn for early help." in page.text
    assert [a[0] for a in acks.sent] == ["e2"]


def test_refer_publishes_a_referral_and_records_who_and_why(
    make_client: Make, store: DeskStore, publisher: FakePublisher
) -> None:
    child = _child(store, "e1")
    client, _ = make_client()
    token = sign_in(client)
    form = {"csrf": token, "action": "refer", "reason": "Family agreed."}
    r = client.post(f"/child/{child}/decide", data=form)
    assert r.status_code == 200
    assert "sent through the broker" in r.text
    [event] = publisher.events
    assert (event["type"], event["sender"], event["summary"]) == (
        "coordination.referral",
        "sandwell-coord",
        "Family agreed.",
    )
    assert event["subjects"][0]["nhs_number"] == "9993080233"
    assert event["subjects"][0]["postcode"] == "B70 8NR"  # the hub is chosen by it
    [d] = store.decisions(child=child)
    assert (d.action, d.decided_by, d.published_event) == ("refer", USER, event["event_id"])


def test_a_form_without_the_csrf_token_changes_nothing(
    make_client: Make, store: DeskStore, publisher: FakePublisher
) -> None:
    child = _child(store, "e1")
    client, _ = make_client()
    sign_in(client)
    r = client.post(f"/child/{child}/decide", data={"action": "refer", "reason": "x"})
    assert r.status_code == 403
    assert publisher.events == []
    assert store.decisions() == []


def test_a_hub_records_an_outcome_that_answers_the_referral(
    make_client: Make, store: DeskStore, publisher: FakePublisher, acks: FakeAcks
) -> None:
    referral = delivery("r1", recipient="cog-west-bromwich", type="coordination.referral")
    store.add_delivery(referral, children_in(referral.view, SECRET), datetime.now(UTC))
    client, _ = make_client(kind="hub", party="cog-west-bromwich")
    token = sign_in(client)
    home = client.get("/").text
    assert "no outcome sent from this desk" in home
    # A desk knows only its own outcomes: the page says so rather than "awaiting".
    assert "awaiting" not in home
    assert "outcomes sent from this desk only" in home
    page = client.get("/referral/r1")
    assert "Ruby" in page.text
    assert acks.sent == [("r1", USER, "early_help")]  # what it was shared for
    form = {"csrf": token, "outcome": "support_offered", "summary": "Visit booked."}
    r = client.post("/referral/r1/outcome", data=form)
    assert "Outcome support offered sent" in r.text
    [event] = publisher.events
    assert (event["type"], event["reference"], event["outcome"]) == (
        "coordination.referral_outcome",
        "r1",
        "support_offered",
    )
    assert "support offered" in client.get("/").text


def test_a_referral_is_answered_once_a_second_outcome_sends_nothing(
    make_client: Make, store: DeskStore, publisher: FakePublisher
) -> None:
    """A double click, a second tab, or a colleague's page still open."""
    referral = delivery("r1", recipient="cog-west-bromwich", type="coordination.referral")
    store.add_delivery(referral, children_in(referral.view, SECRET), datetime.now(UTC))
    client, _ = make_client(kind="hub", party="cog-west-bromwich")
    token = sign_in(client)
    client.get("/referral/r1")
    for outcome in ("support_offered", "declined"):
        form = {"csrf": token, "outcome": outcome, "summary": "Visit booked."}
        r = client.post("/referral/r1/outcome", data=form)
    assert "has an outcome already: it was answered by kim.ward" in r.text
    assert "Nothing was sent" in r.text
    assert [e["outcome"] for e in publisher.events] == ["support_offered"]
    assert [d.action for d in store.decisions(subject_event="r1")] == ["support_offered"]


def test_an_outcome_sent_while_another_is_being_sent_sends_nothing(
    make_client: Make, store: DeskStore, publisher: FakePublisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two colleagues pressing send at the same moment: the second meets the first in flight."""
    referral = delivery("r1", recipient="cog-west-bromwich", type="coordination.referral")
    store.add_delivery(referral, children_in(referral.view, SECRET), datetime.now(UTC))
    client, _ = make_client(kind="hub", party="cog-west-bromwich")
    token = sign_in(client)
    second: list[str] = []
    sent = publisher.publish

    async def publish_slowly(event: Mapping[str, Any]) -> None:
        if not second:  # the first send is awaiting Kafka: the colleague's arrives now
            second.append("")
            form = {"csrf": token, "outcome": "declined", "summary": "No capacity."}
            second[0] = client.post("/referral/r1/outcome", data=form).text
        await sent(event)

    monkeypatch.setattr(publisher, "publish", publish_slowly)
    form = {"csrf": token, "outcome": "support_offered", "summary": "Visit booked."}
    first = client.post("/referral/r1/outcome", data=form).text
    assert "An outcome for this referral is being sent now" in second[0]
    assert "nothing was sent" in second[0]
    assert "Outcome support offered sent" in first
    assert [e["outcome"] for e in publisher.events] == ["support_offered"]
    assert [d.action for d in store.decisions(subject_event="r1")] == ["support_offered"]


def _two_notices_decided_on_a_friday_evening(store: DeskStore) -> datetime:
    """n1 and n2, Operation Encompass notices to school-146201; returns when they were decided."""
    friday = datetime(2026, 11, 27, 21, 0, tzinfo=UTC)
    for eid in ("n1", "n2"):
        store.add_delivery(
            delivery(eid, recipient="school-146201", type="police.domestic_incident",
                     decided_at=friday), [], friday,
        )  # fmt: skip
    return friday


def test_an_encompass_notice_unread_by_the_deadline_is_late_on_the_page_and_the_metric(
    make_client: Make, store: DeskStore, clock: Clock, acks: FakeAcks
) -> None:
    # Decided on Friday evening: the deadline is Monday 08:30 (London, GMT in November).
    _two_notices_decided_on_a_friday_evening(store)
    clock.now = datetime(2026, 11, 30, 8, 20, tzinfo=UTC)
    client, _ = make_client(kind="school", party="school-146201")
    token = sign_in(client)
    home = client.get("/").text
    assert "2026-11-30 08:30 GMT" in home  # London time: the school day starts by it
    assert "LATE" not in home
    client.post("/notice/n1/acknowledge", data={"csrf": token})
    assert store.encompass_ack("n1") == (USER, clock.now)
    assert ("n1", USER, "early_help") in acks.sent
    clock.now = datetime(2026, 11, 30, 8, 31, tzinfo=UTC)
    home = client.get("/").text
    assert home.count("LATE") == 1  # n2, never read; n1 was read in time
    metrics = client.get("/metrics").text
    assert "accord_desk_encompass_late_notices 1.0" in metrics


def test_the_desk_logs_who_and_what_but_never_a_child(
    make_client: Make, store: DeskStore, publisher: FakePublisher
) -> None:
    child = _child(store, "e1")
    client, _ = make_client()
    with structlog.testing.capture_logs() as logs:
        token = sign_in(client)
        client.get(f"/child/{child}")
        form = {"csrf": token, "action": "refer", "reason": "Family agreed."}
        client.post(f"/child/{child}/decide", data=form)
    assert publisher.events
    assert {"desk_sign_in", "desk_decision"} <= {e["event"] for e in logs}
    text = repr(logs)
    for personal in ("Ruby", "Hart", "9993080233", "2016-02-11", "B70 8NR"):
        assert personal not in text


def test_the_desk_serves_the_consoles_stylesheet_then_its_own_rules(
    make_client: Callable[..., tuple[TestClient, DeskDeps]],
) -> None:
    """One stylesheet for the console and the desk (broker.webauth), the desk's rules after."""
    from importlib import resources

    shared = resources.files("broker.webauth").joinpath("static/accord.css").read_text("utf-8")
    client, _ = make_client()
    css = client.get("/static/desk.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert css.text.startswith(shared)
    assert ".banner {" in css.text[len(shared) :]  # the withdrawal banner: the desk's own
    assert css.headers["content-security-policy"]  # the security headers, as on every page


def test_an_unexpected_error_is_the_desks_plain_page_logged_by_type_only(
    make_client: Callable[..., tuple[TestClient, DeskDeps]], store: DeskStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    client, _ = make_client()
    client = TestClient(client.app, base_url=str(client.base_url), raise_server_exceptions=False)
    sign_in(client)

    def broken(**_: object) -> None:
        raise RuntimeError("store gone: 9997017463")

    monkeypatch.setattr(store, "flags", broken)
    with structlog.testing.capture_logs() as logs:
        r = client.get("/")
    assert r.status_code == 500
    assert "The desk could not show this page" in r.text
    assert "Sandwell-Coord" in r.text  # the desk's own page, naming its party
    assert "9997017463" not in r.text
    assert r.headers["content-security-policy"].startswith("default-src 'none'")
    assert [e["error"] for e in logs if e["event"] == "desk_error"] == ["RuntimeError"]
    assert "9997017463" not in str(logs)
    # An NHS number typed where an id goes: the log names the route, not the path.
    monkeypatch.setattr(store, "record", broken)
    with structlog.testing.capture_logs() as logs:
        r = client.get("/record/9997017463")
    assert r.status_code == 500
    assert [e["route"] for e in logs if e["event"] == "desk_error"] == ["/record/{event_id}"]
    assert "9997017463" not in str(logs)


def test_the_teams_home_page_leaves_out_an_outcome_whose_consent_was_withdrawn(
    make_client: Make, store: DeskStore, clock: Clock
) -> None:
    """As the child's page does: a hidden record's content is shown nowhere."""
    child = _child(store, "e1")
    client, _ = make_client()
    token = sign_in(client)
    client.post(f"/child/{child}/decide", data={"csrf": token, "action": "refer", "reason": "ok"})
    [d] = store.decisions(child=child)
    outcome = delivery("o1", type="coordination.referral_outcome", sender="cog-west-bromwich",
                       reference=d.published_event, outcome="support_offered",
                       summary="Family support worker allocated.")  # fmt: skip
    store.add_delivery(outcome, children_in(outcome.view, SECRET), datetime.now(UTC))
    assert "support offered" in client.get("/").text
    store.hide(["o1"], "Consent withdrawn for early help.", clock())
    assert "support offered" not in client.get("/").text
    assert "no hub has confirmed it" in client.get("/").text
    assert "support offered" not in client.get(f"/child/{child}").text


def test_the_teams_home_page_explains_an_unconfirmed_referral_only_when_one_is_listed(
    make_client: Make, store: DeskStore, clock: Clock
) -> None:
    """The help under "Referrals sent" explains the rows saying no hub has confirmed them:
    with every referral answered it is left out, as it would suggest something is missing."""
    child = _child(store, "e1")
    client, _ = make_client()
    token = sign_in(client)
    client.post(f"/child/{child}/decide", data={"csrf": token, "action": "refer", "reason": "ok"})
    assert 'id="unconfirmed-help"' in client.get("/").text
    [d] = store.decisions(child=child)
    outcome = delivery("o1", type="coordination.referral_outcome", sender="cog-west-bromwich",
                       reference=d.published_event, outcome="support_offered")  # fmt: skip
    store.add_delivery(outcome, children_in(outcome.view, SECRET), clock())
    home = client.get("/").text
    assert "support offered" in home
    assert "no hub has confirmed it" not in home
    assert 'id="unconfirmed-help"' not in home
    store.decide(action="refer", reason="r", by=USER, at=clock(), child="c2",
                 published_event="ref-2")  # fmt: skip
    home = client.get("/").text
    assert home.count('class="unconfirmed"') == 1  # ref-2's row
    assert 'id="unconfirmed-help"' in home


def test_the_hubs_home_page_shows_no_need_level_for_a_withdrawn_referral(
    make_client: Make, store: DeskStore, clock: Clock
) -> None:
    for eid, level in (("r1", 4), ("r2", 3)):
        referral = delivery(eid, recipient="cog-west-bromwich", type="coordination.referral",
                            need_level=level)  # fmt: skip
        store.add_delivery(referral, children_in(referral.view, SECRET), datetime.now(UTC))
    store.hide(["r1"], "Consent withdrawn for early help.", clock())
    client, _ = make_client(kind="hub", party="cog-west-bromwich")
    sign_in(client)
    home = client.get("/").text
    assert "hidden (consent withdrawn)" in home
    assert "need-4" not in home
    assert "need-3" in home  # the other referral's, still shown


def test_a_decision_naming_a_flag_not_this_childs_is_refused_and_records_nothing(
    make_client: Make, store: DeskStore
) -> None:
    """A flag id from another child's page, or no flag id at all, is refused 400 as an
    unknown decision is: not recorded without it. A decision that settles no flag (every box
    unticked, or no open flag) is still recorded."""
    child_a = _child(store, "a1")
    leo = {"role": "child", "nhs_number": "9990025312", "given_name": "Leo",
           "family_name": "Hart", "dob": "2018-05-02", "postcode": "B70 8NR"}  # fmt: skip
    b = delivery("b1", subjects=[leo])
    [child_b] = children_in(b.view, SECRET)
    store.add_delivery(b, [child_b], datetime.now(UTC))
    flag = "f" * 32
    store.add_flag(Flag(flag_id=flag, party="sandwell-coord", rule="need-level-4",
                        title="Need level 4", child=child_a, event_ids=("a1",),
                        trigger_event_id="a1", raised_at=T0, window_seconds=86400), T0)  # fmt: skip
    client, _ = make_client()
    token = sign_in(client)
    assert f'value="{flag}"' not in client.get(f"/child/{child_b}?flag={flag}").text
    assert f'value="{flag}"' in client.get(f"/child/{child_a}?flag={flag}").text
    form = {"csrf": token, "action": "no_further_action", "reason": "B is fine"}
    for named in (flag, "../../etc", [flag, "../../etc"]):
        r = client.post(f"/child/{child_b}/decide", data={**form, "flag": named})
        assert r.status_code == 400
        assert "A flag this form names is not one of this child&#39;s" in r.text
        assert "Decision recorded" not in r.text
    assert client.post(f"/child/{child_a}/decide", data={**form, "flag": [flag, "x"]}
                       ).status_code == 400  # its own flag, and one that is no flag  # fmt: skip
    assert store.decisions() == []
    assert [f.flag_id for f in store.flags(open_only=True)] == [flag]
    r = client.post(f"/child/{child_b}/decide", data=form)  # no flag named: for the child
    assert "Decision recorded: no further action. It settles no flag." in r.text
    [d] = store.decisions(child=child_b)
    assert d.flag_ids == ()


def test_a_withdrawn_encompass_notice_is_not_counted_late(
    make_client: Make, store: DeskStore, clock: Clock
) -> None:
    """It cannot be acknowledged (its content is hidden): counting it would alert for good."""
    friday = _two_notices_decided_on_a_friday_evening(store)
    store.hide(["n1"], "Consent withdrawn.", friday)
    clock.now = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    client, _ = make_client(kind="school", party="school-146201")
    sign_in(client)
    assert "accord_desk_encompass_late_notices 1.0" in client.get("/metrics").text  # n2
