"""The desk's store at the upgrade that re-keys children: the timeline, flags, decisions and
a referral still find a child's older records, filed under the key it had."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from broker.desk import DeskDeps, DeskIngest, DeskStore, Flag, children_in, referral_event
from broker.desk._flag import view_child_keys
from tests.unit.desk.conftest import (
    SECRET,
    T0,
    USER,
    Clock,
    FakeAcks,
    delivery,
    old_key,
    sign_in,
)

Make = Callable[..., tuple[TestClient, DeskDeps]]


def kid(given: str) -> dict[str, Any]:
    return {"role": "child", "given_name": given, "family_name": "Hollis", "dob": "2019-03-02",
            "postcode": "B70 8NR"}  # fmt: skip


def filed_before(store: DeskStore, event_id: str, subject: dict[str, Any]) -> str:
    """A delivery stored as the desk stored it until 2026-12-05; the key it was filed under."""
    key = old_key(SECRET, subject)
    assert key is not None
    store.add_delivery(delivery(event_id, subjects=[subject]), [key], T0)
    return key


class _Subscriber:
    parked = 0  # the SDK's count of parked deliveries

    def __init__(self, records: list[Any]) -> None:
        self.records = records

    async def poll(self, _: float, *, commit: bool = True) -> list[Any]:  # noqa: ARG002  # the SDK's signature
        out, self.records = self.records, []
        return out

    async def commit(self) -> None:
        pass


class _Record:
    def __init__(self, message: Any) -> None:
        self.message = message


def flag(child: str, flag_id: str = "f" * 32) -> Flag:
    return Flag(flag_id=flag_id, party="sandwell-coord", rule="domestic-abuse-repeat",
                title="Domestic abuse", child=child, event_ids=("e1", "e2"),
                trigger_event_id="e2", raised_at=T0, window_seconds=30 * 86400)  # fmt: skip


def test_the_timeline_finds_a_childs_records_filed_under_its_old_keys(
    make_client: Make, store: DeskStore, acks: FakeAcks
) -> None:
    old = filed_before(store, "e1", kid("Mary-Ann"))
    filed_before(store, "e2", kid("Maryann"))
    store.add_flag(flag(old), T0)
    store.decide(action="signpost", reason="School nurse", by="kim", at=T0, child=old)
    client, _ = make_client()  # the desk starts: its store is re-keyed
    [child] = children_in(delivery("x", subjects=[kid("Mary Ann")]).view, SECRET)
    assert [r.event_id for r in store.records_about(child)] == ["e1", "e2"]
    assert [f.child for f in store.flags()] == [child]
    assert [d.action for d in store.decisions(child=child)] == ["signpost"]
    sign_in(client)
    page = client.get(f"/child/{child}")
    assert page.status_code == 200
    assert sorted(a[0] for a in acks.sent) == ["e1", "e2"]
    # A page or flag link from before the upgrade leads to the whole timeline.
    r = client.get(f"/child/{old}?flag={'f' * 32}", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, f"/child/{child}?flag={'f' * 32}")
    r = client.get(f"/flag/{'f' * 32}", follow_redirects=False)
    assert r.headers["location"] == f"/child/{child}?flag={'f' * 32}"


def test_the_store_is_re_keyed_once(store: DeskStore) -> None:
    filed_before(store, "e1", kid("Siân"))
    filed_before(store, "e2", kid("Sian"))

    def keys_of(view: dict[str, Any]) -> Any:
        return view_child_keys(view, SECRET)

    assert store.rekey_children(keys_of) == 1  # one child keyed anew (Siân)
    assert store.rekey_children(keys_of) is None
    [child] = children_in(delivery("x", subjects=[kid("Sia\u0302n")]).view, SECRET)
    assert [r.event_id for r in store.records_about(child)] == ["e1", "e2"]


def test_a_re_key_cut_off_after_noting_an_alias_still_moves_the_flags_at_the_next_start(
    store: DeskStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Else the flag stays under the old key for good: no page shows it, no decision closes
    it (the review's repro: a crash between the alias and the move)."""
    old = filed_before(store, "e1", kid("Mary-Ann"))
    store.add_flag(flag(old), datetime.now(UTC))
    real = store._q

    def cut_off(sql: str, params: Any = ()) -> Any:
        if sql.startswith("UPDATE desk_flags"):
            raise ConnectionError("the database went away")
        return real(sql, params)

    def keys_of(view: dict[str, Any]) -> Any:
        return view_child_keys(view, SECRET)

    monkeypatch.setattr(store, "_q", cut_off)
    with pytest.raises(ConnectionError):
        store.rekey_children(keys_of)
    monkeypatch.setattr(store, "_q", real)
    store.rekey_children(keys_of)  # the next start
    [child] = children_in(delivery("x", subjects=[kid("Mary Ann")]).view, SECRET)
    assert [f.child for f in store.flags()] == [child]


def test_ingest_moves_a_legacy_keys_flags_once_per_process_not_at_every_delivery(
    store: DeskStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ingest notes the aliases of every delivery naming a re-keyed child ("Mary Ann" is
    common): the flags and decisions move at the first, and later ones write nothing."""
    old = filed_before(store, "e1", kid("Mary-Ann"))
    [child] = children_in(delivery("x", subjects=[kid("Mary Ann")]).view, SECRET)
    written: list[str] = []
    real = store._q

    def counting(sql: str, params: Any = ()) -> Any:
        if sql.startswith(("INSERT", "UPDATE")):
            written.append(sql.split(maxsplit=1)[0])
        return real(sql, params)

    monkeypatch.setattr(store, "_q", counting)
    assert store.add_aliases({old: child}) == 1
    assert written == ["INSERT", "UPDATE", "UPDATE"]
    assert store.add_aliases({old: child}) == 0
    assert written == ["INSERT", "UPDATE", "UPDATE"]


async def test_a_flag_arriving_under_an_old_key_and_a_new_spelling_join_the_timeline(
    make_client: Make, store: DeskStore, clock: Clock
) -> None:
    old = filed_before(store, "e1", kid("Mary-Ann"))
    make_client()

    new = delivery("e2", subjects=[kid("Mary Ann")])
    ingest = DeskIngest(
        store,
        _Subscriber([_Record(new)]),
        linkage_key=SECRET,
        clock=clock,  # type: ignore[arg-type]
    )
    await ingest.poll_once(0)
    [child] = children_in(new.view, SECRET)
    assert [r.event_id for r in store.records_about(child)] == ["e1", "e2"]
    # A flag raised by a flag service not yet upgraded names the child by its old key.
    store.add_flag(flag(old, "a" * 32), datetime.now(UTC))
    assert [f.child for f in store.flags()] == [child]


def test_a_referral_from_a_re_keyed_childs_page_names_the_child(
    make_client: Make, store: DeskStore
) -> None:
    filed_before(store, "e1", kid("O'Brien"))
    _, deps = make_client()
    [child] = children_in(delivery("x", subjects=[kid("OBrien")]).view, SECRET)
    event = referral_event(party=deps.party, records=store.records_about(child), child=child,
                           secret=SECRET, reason="Family agreed.", at=T0)  # fmt: skip
    assert event is not None
    assert event["subjects"][0]["given_name"] == "O'Brien"


def test_a_child_with_no_letter_in_a_name_keeps_its_old_timeline(
    make_client: Make, store: DeskStore, acks: FakeAcks
) -> None:
    """Not keyed now, so no new record joins it; what was filed stays found, and referable."""
    old = filed_before(store, "e1", kid("-"))
    store.add_flag(flag(old), T0)
    client, deps = make_client()
    assert children_in(delivery("e2", subjects=[kid("-")]).view, SECRET) == []
    sign_in(client)
    assert client.get(f"/child/{old}").status_code == 200
    assert acks.sent == [("e1", USER, "early_help")]
    event = referral_event(party=deps.party, records=store.records_about(old), child=old,
                           secret=SECRET, reason="Family agreed.", at=T0)  # fmt: skip
    assert event is not None


def test_a_flag_under_an_old_key_finds_a_child_first_delivered_after_the_upgrade(
    store: DeskStore, clock: Clock
) -> None:
    """The flag service may have counted a record the desk had not stored before the upgrade."""
    new = delivery("e1", subjects=[kid("Siân")])
    ingest = DeskIngest(
        store,
        _Subscriber([_Record(new)]),
        linkage_key=SECRET,
        clock=clock,  # type: ignore[arg-type]
    )
    asyncio.run(ingest.poll_once(0))
    old = old_key(SECRET, kid("Siân"))
    assert old is not None
    store.add_flag(flag(old), datetime.now(UTC))
    assert [f.child for f in store.flags()] == children_in(new.view, SECRET)
