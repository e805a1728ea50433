"""A flag whose records have all been withdrawn is closed as what it is: its own button
records who closed it and why, settles that flag alone, decides nothing about the child and
refers nobody; "refer" is not offered for it."""

from __future__ import annotations

import re
from collections.abc import Callable

import structlog.testing
from fastapi.testclient import TestClient

from broker.desk import DeskDeps, DeskStore, Flag, children_in
from tests.unit.desk.conftest import SECRET, T0, USER, FakePublisher, delivery, sign_in

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
