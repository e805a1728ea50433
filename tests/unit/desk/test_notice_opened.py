"""A school's Operation Encompass notice counts as read from its first opening by a signed-in
person whose acknowledgement the desk sent, as ``accord audit report`` and the indexer's
``accord_audit_encompass_overdue`` count it (the school's first access acknowledgement);
**Acknowledge as read** stays a person's explicit record. An opening whose acknowledgement
was not sent is never kept: the desk errs towards late, never towards read."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from broker.desk import DeskDeps, DeskStore, _store_notices
from tests.unit.desk.conftest import USER, Clock, FakeAcks, delivery, sign_in

Make = Callable[..., tuple[TestClient, DeskDeps]]
SCHOOL = "school-146201"
# Decided on Friday evening: the deadline is Monday 08:30 (London, GMT in November).
FRIDAY = datetime(2026, 11, 27, 21, 0, tzinfo=UTC)
BEFORE = datetime(2026, 11, 30, 1, 30, tzinfo=UTC)
AFTER = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
PUPIL = {"role": "child", "nhs_number": "9993080233", "given_name": "Ruby",
         "family_name": "Hart", "dob": "2016-02-11"}  # fmt: skip


def _notices(store: DeskStore, *ids: str) -> None:
    for eid in ids:
        store.add_delivery(
            delivery(eid, recipient=SCHOOL, type="police.domestic_incident", decided_at=FRIDAY,
                     subjects=[PUPIL]), [], FRIDAY,
        )  # fmt: skip


def _late_metric(client: TestClient) -> str:
    [line] = [
        x for x in client.get("/metrics").text.splitlines()
        if x.startswith("accord_desk_encompass_late_notices ")
    ]  # fmt: skip
    return line.split()[1]


def test_a_notice_opened_before_its_deadline_is_not_late_without_the_button(
    make_client: Make, store: DeskStore, clock: Clock
) -> None:
    """The field walk: opened at 01:30 Monday, the button never pressed."""
    _notices(store, "n1", "n2")
    client, _ = make_client(kind="school", party=SCHOOL)
    clock.now = BEFORE
    sign_in(client)
    assert client.get("/notice/n1").status_code == 200
    assert store.encompass_first_opened("n1") == (USER, BEFORE)
    assert store.encompass_ack("n1") is None  # the button is its own record
    clock.now = AFTER
    sign_in(client)  # a new session: the last one has been idle since
    page = client.get("/notice/n1").text
    assert 'id="late"' not in page
    assert "First opened by kim.ward at 2026-11-30 01:30 GMT" in page
    assert store.encompass_first_opened("n1") == (USER, BEFORE)  # the first opening kept
    home = client.get("/").text
    assert home.count("LATE") == 1  # n2 only
    assert "LATE: not opened by the deadline" in home
    assert "opened by kim.ward at 2026-11-30 01:30 GMT" in home
    assert _late_metric(client) == "1.0"


def test_a_notice_first_opened_after_its_deadline_is_late(
    make_client: Make, store: DeskStore, clock: Clock
) -> None:
    _notices(store, "n1")
    client, _ = make_client(kind="school", party=SCHOOL)
    clock.now = AFTER
    token = sign_in(client)
    page = client.get("/notice/n1").text
    assert "LATE: first opened after the deadline" in page
    client.post("/notice/n1/acknowledge", data={"csrf": token})
    assert store.encompass_ack("n1") == (USER, AFTER)
    assert _late_metric(client) == "1.0"  # the button does not make it timely


def test_an_opening_whose_acknowledgement_was_not_sent_is_not_kept(
    make_client: Make, store: DeskStore, clock: Clock, acks: FakeAcks
) -> None:
    """Kafka down: the page is refused and the notice stays unread, so late at its deadline."""
    _notices(store, "n1")
    client, _ = make_client(kind="school", party=SCHOOL)
    clock.now = BEFORE
    sign_in(client)
    acks.down = True
    assert client.get("/notice/n1").status_code == 503
    assert store.encompass_first_opened("n1") is None
    clock.now = AFTER
    acks.down = False
    sign_in(client)
    assert "LATE: not opened by the deadline" in client.get("/").text
    assert _late_metric(client) == "1.0"


def test_every_page_that_acknowledges_a_notice_counts_as_opening_it(
    make_client: Make, store: DeskStore, clock: Clock
) -> None:
    """The central side counts any access acknowledgement: the record page's, a search's."""
    _notices(store, "n1", "n2")
    client, _ = make_client(kind="school", party=SCHOOL)
    clock.now = BEFORE
    token = sign_in(client)
    assert client.get("/record/n1").status_code == 200
    r = client.post("/records/search", data={"csrf": token, "nhs_number": "999 308 0233"})
    assert r.status_code == 200
    assert store.encompass_first_opened("n1") == (USER, BEFORE)
    assert store.encompass_first_opened("n2") == (USER, BEFORE)
    clock.now = AFTER
    assert _late_metric(client) == "0.0"


def test_another_desk_keeps_no_opening(make_client: Make, store: DeskStore) -> None:
    _notices(store, "n1")
    client, _ = make_client()  # a co-ordinating team's
    sign_in(client)
    assert client.get("/record/n1").status_code == 200
    assert store.encompass_first_opened("n1") is None


def test_a_store_that_cannot_keep_the_opening_still_shows_the_notice(
    make_client: Make, store: DeskStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The acknowledgement was sent, so the person sees the notice; the desk, not having kept
    the opening, goes on showing it unopened (towards LATE), and says why in its log."""
    _notices(store, "n1")
    client, _ = make_client(kind="school", party=SCHOOL)
    clock.now = BEFORE
    sign_in(client)

    def locked(*_: object, **__: object) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(store, "encompass_opened", locked)
    with capture_logs() as logs:
        assert client.get("/notice/n1").status_code == 200
    assert store.encompass_first_opened("n1") is None
    assert {"event": "desk_opening_not_kept", "error": "OperationalError", "notices": 1,
            "log_level": "warning"} in logs  # fmt: skip


def _recording(kept: set[str], said: list[str]) -> Callable[..., list[tuple[object, ...]]]:
    def q(sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        said.append(sql.split(maxsplit=1)[0])
        return [(p,) for p in params if p in kept] if sql.startswith("SELECT") else []

    return q


def test_an_opening_already_kept_writes_nothing_again() -> None:
    """On SQLite even an insert that does nothing takes the write lock."""
    said: list[str] = []
    _store_notices.note_opened(_recording({"n1"}, said), ["n1", "n1"], USER, BEFORE)
    assert said == ["SELECT"]
    said.clear()
    _store_notices.note_opened(_recording({"n1"}, said), ["n1", "n2"], USER, BEFORE)
    assert said == ["SELECT", "INSERT"]
