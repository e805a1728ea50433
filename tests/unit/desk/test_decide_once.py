"""Two decisions about one flag at once (two tabs, two colleagues, two desk processes on one
store): one is recorded (and its referral sent), the other answered "settled since"."""

from __future__ import annotations

import asyncio
import html
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from broker.desk import DeskDeps, DeskStore, Flag, children_in, open_desk_store
from broker.desk._child_pages import _Turns
from tests.unit.desk.conftest import SECRET, T0, FakePublisher, delivery, sign_in

Make = Callable[..., tuple[TestClient, DeskDeps]]
FLAG = "a" * 32


class GatedPublisher(FakePublisher):
    """Publishes once ``gate`` is open (it is, unless a test closes it), as Kafka takes its
    time; ``calls``: how many publishes began; ``then``: run as each begins."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()
        self.began = asyncio.Event()
        self.calls = 0
        self.then: Callable[[], None] = lambda: None

    async def publish(self, event: Mapping[str, Any]) -> None:
        self.calls += 1
        self.began.set()
        self.then()
        await self.gate.wait()
        await super().publish(event)


@pytest.fixture
def publisher() -> GatedPublisher:
    return GatedPublisher()


@pytest.fixture
def other(store: DeskStore, tmp_path: Path) -> Iterator[DeskStore]:
    """Another desk process's store: the same database."""
    s = open_desk_store(None, home=tmp_path, party="sandwell-coord")
    yield s
    s.close()


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


async def test_two_referrals_for_one_flag_at_once_record_and_send_one_and_refuse_the_other(
    make_client: Make, store: DeskStore, publisher: GatedPublisher
) -> None:
    """The second, posted while the first's referral is being published, is answered 409
    "settled since" once the first is stored: one decision, one referral."""
    child = _child_with_flag(store)
    client, _ = make_client()
    token = sign_in(client)
    form = {"csrf": token, "action": "refer", "reason": "Needs a hub.", "flag": FLAG}
    publisher.gate.clear()
    transport = httpx2.ASGITransport(app=client.app)
    async with httpx2.AsyncClient(
        transport=transport, base_url=str(client.base_url), cookies=client.cookies
    ) as browser:
        posts = [
            asyncio.create_task(browser.post(f"/child/{child}/decide", data=form)) for _ in range(2)
        ]
        await asyncio.wait_for(publisher.began.wait(), timeout=10)
        await asyncio.sleep(0.3)  # time enough for the second to reach Kafka too, if let
        publisher.gate.set()
        answers = await asyncio.wait_for(asyncio.gather(*posts), timeout=10)
    assert sorted(a.status_code for a in answers) == [303, 409]
    [refused] = [a for a in answers if a.status_code == 409]
    assert "was settled by kim.ward at" in html.unescape(refused.text)
    assert "Nothing was recorded or sent" in html.unescape(refused.text)
    assert publisher.calls == 1
    assert len(publisher.events) == 1
    [decision] = store.decisions(child=child)
    assert decision.flag_ids == (FLAG,)
    assert decision.published_event == publisher.events[0]["event_id"]


def test_a_decision_the_store_refuses_after_the_pages_check_is_answered_settled_since(
    make_client: Make, store: DeskStore, other: DeskStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another desk process settles the flag between this one's check and its store: 409,
    saying who settled it; nothing recorded."""
    child = _child_with_flag(store)
    client, _ = make_client()
    token = sign_in(client)
    checked = store.flags

    def check_then_other_decides(**kw: Any) -> Any:
        seen = checked(**kw)
        other.decide(action="signpost", reason="Seen.", by="sam.lee", at=T0,
                     flag_ids=[FLAG], child=child)  # fmt: skip
        monkeypatch.setattr(store, "flags", checked)
        return seen

    monkeypatch.setattr(store, "flags", check_then_other_decides)
    form = {"csrf": token, "action": "no_further_action", "reason": "Known.", "flag": FLAG}
    r = client.post(f"/child/{child}/decide", data=form)
    assert r.status_code == 409
    said = html.unescape(r.text)
    assert "The flag “Rule multi-agency” was settled by sam.lee at" in said
    assert "Nothing was recorded or sent" in said
    assert [d.action for d in store.decisions(child=child)] == ["signpost"]


def test_a_withdrawn_flag_another_desk_process_closed_since_the_check_is_not_closed_twice(
    make_client: Make, store: DeskStore, other: DeskStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    child = _child_with_flag(store)
    store.hide(["e1", "e2"], "Consent withdrawn.", T0)
    client, _ = make_client()
    token = sign_in(client)
    checked = store.flags

    def check_then_other_closes(**kw: Any) -> Any:
        seen = checked(**kw)
        other.decide(action="records_withdrawn", reason="Withdrawn.", by="sam.lee", at=T0,
                     flag_ids=[FLAG], child=child)  # fmt: skip
        monkeypatch.setattr(store, "flags", checked)
        return seen

    monkeypatch.setattr(store, "flags", check_then_other_closes)
    r = client.post(f"/child/{child}/close-withdrawn", data={"csrf": token, "flag": FLAG})
    assert r.status_code == 200
    assert "That flag cannot be closed this way" in r.text
    assert [d.decided_by for d in store.decisions(child=child)] == ["sam.lee"]


def test_a_referral_sent_before_the_store_refuses_it_is_recorded_as_sent_settling_no_flag(
    make_client: Make, store: DeskStore, other: DeskStore, publisher: GatedPublisher
) -> None:
    """Another desk process settles the flag while the referral is being published: the
    referral went, so it is kept (its event id; a re-send is "sent already"), settling
    nothing, and the person is told both; the log names the event id only."""
    child = _child_with_flag(store)
    client, _ = make_client()
    token = sign_in(client)
    publisher.then = lambda: other.decide(
        action="no_further_action", reason="Known.", by="sam.lee", at=T0, flag_ids=[FLAG],
        child=child,
    )  # fmt: skip
    form = {"csrf": token, "action": "refer", "reason": "Needs a hub.", "flag": FLAG}
    with capture_logs() as logs:
        r = client.post(f"/child/{child}/decide", data=form, follow_redirects=False)
    assert r.status_code == 303
    [sent] = publisher.events
    decided = {d.action: d for d in store.decisions(child=child)}
    theirs, ours = decided["no_further_action"], decided["refer"]
    assert (theirs.action, theirs.flag_ids) == ("no_further_action", (FLAG,))
    assert (ours.action, ours.flag_ids, ours.published_event) == ("refer", (), sent["event_id"])
    [warned] = [e for e in logs if e["event"] == "desk_referral_sent_flags_settled"]
    assert warned == {
        "event": "desk_referral_sent_flags_settled", "event_id": sent["event_id"],
        "log_level": "warning",
    }  # fmt: skip
    page = html.unescape(client.get(f"/child/{child}").text)
    assert f"Referral {sent['event_id']} was sent through the broker, but meanwhile" in page
    assert "was settled by sam.lee at" in page
    assert "The referral is recorded as sent and settles no flag" in page


async def test_turns_keep_one_holder_per_child_and_keep_no_lock_once_none_waits() -> None:
    turns = _Turns()
    order: list[str] = []

    async def hold(name: str, child: str) -> None:
        async with turns.one(child):
            order.append(f"{name} in")
            await asyncio.sleep(0.05)
            order.append(f"{name} out")

    await asyncio.gather(hold("a", "c1"), hold("b", "c1"), hold("c", "c2"))
    assert order.index("a out") < order.index("b in")  # one at a time about c1
    assert order.index("c in") < order.index("a out")  # another child is not kept waiting
    assert len(turns) == 0
    waiting = asyncio.create_task(hold("d", "c1"))
    async with turns.one("c1"):
        await asyncio.sleep(0.01)
        waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert len(turns) == 0


def _second_flag(store: DeskStore, child: str, flag_id: str = "b" * 32) -> str:
    store.add_flag(
        Flag(
            flag_id=flag_id, party="sandwell-coord", rule="two-agencies",
            title="Rule two-agencies", child=child, event_ids=("e1", "e2"),
            trigger_event_id="e1", raised_at=T0, window_seconds=86400,
        ),
        T0,
    )  # fmt: skip
    return flag_id


def test_a_referral_sent_while_another_settled_some_of_its_flags_settles_the_rest_and_says_so(
    make_client: Make, store: DeskStore, other: DeskStore, publisher: GatedPublisher
) -> None:
    """Not recorded as settling no flag, leaving the others open: it settles those nobody
    else settled, and the banner names both."""
    child = _child_with_flag(store)
    second = _second_flag(store, child)
    client, _ = make_client()
    token = sign_in(client)
    publisher.then = lambda: other.decide(
        action="no_further_action", reason="Known.", by="sam.lee", at=T0, flag_ids=[FLAG],
        child=child,
    )  # fmt: skip
    form = {"csrf": token, "action": "refer", "reason": "Needs a hub.", "flag": [FLAG, second]}
    r = client.post(f"/child/{child}/decide", data=form, follow_redirects=False)
    assert r.status_code == 303
    [sent] = publisher.events
    decided = {d.action: d for d in store.decisions(child=child)}
    assert decided["no_further_action"].flag_ids == (FLAG,)
    assert decided["refer"].flag_ids == (second,)
    assert decided["refer"].published_event == sent["event_id"]
    assert store.flags(open_only=True) == []
    page = html.unescape(client.get(f"/child/{child}").text)
    assert "another decision settled some of its flags" in page
    assert "The flag “Rule multi-agency” was settled by sam.lee at" in page
    assert "settles the flag(s) nobody else settled: “Rule two-agencies”" in page


def test_a_referral_whose_rest_is_settled_too_while_it_is_recorded_settles_what_is_left(
    make_client: Make, store: DeskStore, other: DeskStore, publisher: GatedPublisher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The store refuses it twice (another desk process settles a second flag between the
    two tries): recorded the third time, settling the one flag nobody else settled."""
    child = _child_with_flag(store)
    second, third = _second_flag(store, child), _second_flag(store, child, "c" * 32)
    client, _ = make_client()
    token = sign_in(client)
    publisher.then = lambda: other.decide(
        action="no_further_action", reason="Known.", by="sam.lee", at=T0, flag_ids=[FLAG],
        child=child,
    )  # fmt: skip
    decide = store.decide
    tries: list[tuple[str, ...]] = []

    def other_takes_the_second_first(**kw: Any) -> Any:
        tries.append(tuple(kw["flag_ids"]))
        if len(tries) == 2:
            other.decide(action="signpost", reason="Seen.", by="sam.lee", at=T0,
                         flag_ids=[second], child=child)  # fmt: skip
        return decide(**kw)

    monkeypatch.setattr(store, "decide", other_takes_the_second_first)
    form = {"csrf": token, "action": "refer", "reason": "Needs a hub.",
            "flag": [FLAG, second, third]}  # fmt: skip
    r = client.post(f"/child/{child}/decide", data=form, follow_redirects=False)
    assert r.status_code == 303
    assert tries == [(FLAG, second, third), (second, third), (third,)]
    [ours] = [d for d in store.decisions(child=child) if d.action == "refer"]
    assert ours.flag_ids == (third,)


async def test_a_refusal_page_is_drawn_after_the_childs_turn_is_given_up(
    make_client: Make, store: DeskStore, acks: Any
) -> None:
    """Drawing it acknowledges access through Kafka: while that waits, another decision
    about the same child is taken, not kept waiting behind it."""
    child = _child_with_flag(store)
    store.decide(action="signpost", reason="Seen.", by="sam.lee", at=T0, flag_ids=[FLAG],
                 child=child)  # fmt: skip
    client, _ = make_client()
    token = sign_in(client)
    gate, waiting = asyncio.Event(), asyncio.Event()
    acknowledge = acks.acknowledge_all

    async def slow_kafka(event_ids: Any, *, by: str, purpose: str) -> None:
        waiting.set()
        await gate.wait()
        await acknowledge(event_ids, by=by, purpose=purpose)

    acks.acknowledge_all = slow_kafka
    transport = httpx2.ASGITransport(app=client.app)
    async with httpx2.AsyncClient(
        transport=transport, base_url=str(client.base_url), cookies=client.cookies
    ) as browser:
        settled = {"csrf": token, "action": "no_further_action", "reason": "Known.",
                   "flag": FLAG}  # fmt: skip
        refused = asyncio.create_task(browser.post(f"/child/{child}/decide", data=settled))
        await asyncio.wait_for(waiting.wait(), timeout=10)
        plain = {"csrf": token, "action": "signpost", "reason": "Leaflet sent."}
        taken = await asyncio.wait_for(
            browser.post(f"/child/{child}/decide", data=plain), timeout=5
        )
        assert taken.status_code == 303
        gate.set()
        assert (await asyncio.wait_for(refused, timeout=10)).status_code == 409
    assert [d.reason for d in store.decisions(child=child)] == ["Seen.", "Leaflet sent."]
