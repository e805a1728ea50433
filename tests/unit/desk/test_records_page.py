"""Every record a desk holds is reachable: a list naming nobody, paged; a search by reference
or NHS number whose query never reaches the address or the log, and whose NHS-number results
are acknowledged as viewed; an honest label on a referral no hub has confirmed."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import structlog.testing
from fastapi.testclient import TestClient

from broker.desk import DeskDeps, DeskStore, children_in
from broker.desk._record_pages import REFERENCE_LIMIT
from tests.unit.desk.conftest import SECRET, T0, USER, FakeAcks, delivery, sign_in

Make = Callable[..., tuple[TestClient, DeskDeps]]
NHS = "9993080233"  # the conftest child's (Ruby Hart)
PERSONAL = ("Ruby", "Hart", NHS, "2016-02-11", "B70 8NR")


def _store(store: DeskStore, event_id: str, **view: Any) -> None:
    d = delivery(event_id, **view)
    store.add_delivery(d, children_in(d.view, SECRET), T0)


def test_every_record_is_listed_newest_first_and_the_list_names_nobody(
    make_client: Make, store: DeskStore, acks: FakeAcks
) -> None:
    """A hub's voluntary-sector concern, never a referral, is reachable from a page."""
    _store(store, "r1", type="coordination.referral", reference="SC/1")
    later = delivery("v1", type="voluntary.concern", sender="bvsc", reference="BVSC/9",
                     decided_at=T0 + timedelta(hours=1))  # fmt: skip
    store.add_delivery(later, children_in(later.view, SECRET), T0)
    client, _ = make_client(kind="hub", party="cog-west-bromwich")
    sign_in(client)
    page = client.get("/records").text
    rows = re.findall(r'<tr class="record-row" data-event="(\w+)">', page)
    assert rows == ["v1", "r1"]
    assert 'href="/record/v1"' in page
    assert 'href="/referral/r1"' in page  # a referral opens where its outcome is recorded
    assert "BVSC/9" in page
    assert [p for p in PERSONAL if p in page] == []
    assert acks.sent == []  # nothing personal shown, nothing to acknowledge
    assert 'href="/records"' in client.get("/").text  # reached from the desk's home


def test_the_list_is_paged(make_client: Make, store: DeskStore) -> None:
    for n in range(53):
        d = delivery(f"e{n:02}", decided_at=T0 + timedelta(minutes=n))
        store.add_delivery(d, [], T0)
    client, _ = make_client()
    sign_in(client)
    first = client.get("/records").text
    assert first.count('class="record-row"') == 50
    assert 'data-event="e52"' in first
    assert 'href="/records?page=2"' in first
    second = client.get("/records?page=2").text
    assert re.findall(r'class="record-row" data-event="(\w+)"', second) == ["e02", "e01", "e00"]
    # Nonsense is page 1, and a digit int() refuses ("²") is nonsense, not a 500.
    for nonsense in ("x", "%C2%B2", "\u00b2", "0", "1" * 40, "-1", "+2", " 2"):
        r = client.get(f"/records?page={nonsense}")
        assert r.status_code == 200, nonsense
        assert 'data-event="e52"' in r.text, nonsense
    far = client.get("/records?page=999999")  # past the end: an empty page, not an error
    assert far.status_code == 200
    assert 'class="record-row"' not in far.text


def test_an_unflagged_record_leads_the_team_to_its_childs_timeline(
    make_client: Make, store: DeskStore
) -> None:
    _store(store, "e1")
    [child] = children_in(delivery("x").view, SECRET)
    client, _ = make_client()
    sign_in(client)
    assert 'href="/record/e1"' in client.get("/records").text
    assert f'href="/child/{child}"' in client.get("/record/e1").text


def test_a_search_by_reference_lists_its_records_and_sends_nothing_personal(
    make_client: Make, store: DeskStore, acks: FakeAcks
) -> None:
    _store(store, "e1", reference="WMP/26/1")
    _store(store, "e2", reference="WMP/26/2")
    _store(store, "e3", reference="WMP/26/1")
    store.hide(["e3"], "Consent withdrawn.", T0)
    client, _ = make_client()
    token = sign_in(client)
    r = client.post("/records/search", data={"csrf": token, "reference": " wmp/26/1 "})
    assert re.findall(r'class="record-row" data-event="(\w+)"', r.text) == ["e1"]
    assert [p for p in PERSONAL if p in r.text] == []
    assert acks.sent == []
    assert client.post("/records/search", data={"reference": "WMP/26/1"}).status_code == 403


def test_a_search_by_nhs_number_is_acknowledged_and_never_in_the_address_or_the_log(
    make_client: Make, store: DeskStore, acks: FakeAcks
) -> None:
    _store(store, "e1")
    _store(store, "e2", subjects=[{"role": "child", "nhs_number": "9990025312"}])
    client, _ = make_client()
    token = sign_in(client)
    with structlog.testing.capture_logs() as logs:
        r = client.post("/records/search", data={"csrf": token, "nhs_number": "999 308 0233"})
    assert r.status_code == 200
    assert str(r.url).endswith("/records/search")
    assert re.findall(r'class="record-row" data-event="(\w+)"', r.text) == ["e1"]
    assert acks.sent == [("e1", USER, "early_help")]  # it tells who the record is about
    [child] = children_in(delivery("x").view, SECRET)
    assert f'href="/child/{child}"' in r.text
    assert [e["found"] for e in logs if e["event"] == "desk_records_search"] == [1]
    assert NHS not in str(logs)
    assert "999 308 0233" not in str(logs)


def test_a_search_by_nhs_number_acknowledges_each_record_for_what_it_was_shared_for(
    make_client: Make, store: DeskStore, acks: FakeAcks
) -> None:
    """As on opening it: never for the desk's own purpose (a triage, a referral)."""
    for event_id, purpose in (("e1", "early_help"), ("e2", "safeguarding"),
                              ("e3", "early_help"), ("e4", "Not A Purpose")):  # fmt: skip
        d = delivery(event_id).model_copy(update={"purpose": purpose})
        store.add_delivery(d, children_in(d.view, SECRET), T0)
    client, _ = make_client()
    token = sign_in(client)
    r = client.post("/records/search", data={"csrf": token, "nhs_number": NHS})
    assert r.status_code == 200
    assert sorted(acks.sent) == [
        ("e1", USER, "early_help"), ("e2", USER, "safeguarding"), ("e3", USER, "early_help"),
        ("e4", USER, "unstated"),  # no acknowledgement can carry it: said so, not lent one
    ]  # fmt: skip


def test_a_search_by_reference_says_when_it_found_more_than_it_lists(
    make_client: Make, store: DeskStore
) -> None:
    for n in range(REFERENCE_LIMIT + 1):
        store.add_delivery(delivery(f"e{n:03}", decided_at=T0 + timedelta(minutes=n)), [], T0)
    client, _ = make_client()
    token = sign_in(client)
    r = client.post("/records/search", data={"csrf": token, "reference": "WMP/26/1"})
    assert r.text.count('class="record-row"') == REFERENCE_LIMIT
    assert 'data-event="e000"' not in r.text  # the oldest left out
    assert f"More than {REFERENCE_LIMIT} records found" in r.text
    assert f"{REFERENCE_LIMIT + 1} record(s) found" not in r.text
    store.hide(["e000"], "Consent withdrawn.", T0)  # exactly the limit left to find
    r = client.post("/records/search", data={"csrf": token, "reference": "WMP/26/1"})
    assert r.text.count('class="record-row"') == REFERENCE_LIMIT
    assert "More than" not in r.text
    assert f"{REFERENCE_LIMIT} record(s) found" in r.text


def test_a_search_by_nhs_number_shows_nothing_if_the_view_cannot_be_recorded(
    make_client: Make, store: DeskStore, acks: FakeAcks
) -> None:
    _store(store, "e1")
    client, _ = make_client()
    token = sign_in(client)
    acks.down = True
    r = client.post("/records/search", data={"csrf": token, "nhs_number": NHS})
    assert r.status_code == 503
    assert 'data-event="e1"' not in r.text


def test_a_mistyped_nhs_number_is_refused_without_repeating_it(
    make_client: Make, store: DeskStore
) -> None:
    _store(store, "e1")
    client, _ = make_client()
    token = sign_in(client)
    r = client.post("/records/search", data={"csrf": token, "nhs_number": "9993080234"})
    # In plain words: the check digit's arithmetic is for the SDK and the command line.
    assert "That NHS number is not valid: check you copied all 10 digits." in r.text
    assert "check digit" not in r.text
    assert "modulus" not in r.text
    assert "9993080234" not in r.text


def test_a_record_page_is_headed_and_titled_by_its_sender_and_when_it_was_shared(
    make_client: Make, store: DeskStore
) -> None:
    """Not just "Record": who sent it and the day it was shared, in the local time; no person
    in the title, which the browser keeps in its history and bookmarks."""
    _store(store, "e1")
    client, _ = make_client(party_names={"wmp": "West Midlands Police"})
    sign_in(client)
    page = client.get("/record/e1").text
    heading = "Record from West Midlands Police, shared 2026-11-23"
    assert f"<h1>{heading}</h1>" in page
    title = page.split("<title>", 1)[1].split("</title>", 1)[0]
    assert title.startswith(f"{heading} · ")
    for personal in ("Ruby", "Hart", "9993080233", "2016-02-11", "B70"):
        assert personal not in title


def test_a_referral_no_hub_has_confirmed_says_what_it_means(
    make_client: Make, store: DeskStore
) -> None:
    """The broker may have shared it with nobody (no consent): never "awaiting the hub"."""
    _store(store, "e1")
    [child] = children_in(delivery("x").view, SECRET)
    client, _ = make_client()
    token = sign_in(client)
    client.post(f"/child/{child}/decide", data={"csrf": token, "action": "refer", "reason": "x"})
    for page in (client.get("/").text, client.get(f"/child/{child}").text):
        assert "awaiting the hub" not in page
        assert "sent to the broker; no hub has confirmed it" in page
        assert "consent" in page
        assert "shared with nobody" in page


POLICE_TO_COG = [{"role": "child", "given_name": "Ruby", "family_name": "Hart"}]


def test_a_hubs_search_says_how_many_records_it_cannot_find_by_nhs_number_or_reference(
    make_client: Make, store: DeskStore, acks: FakeAcks
) -> None:
    """The Tipton worker's case: police and health share no NHS number and no reference with
    a hub, so "No record found" must not read as "nobody has told us anything"."""
    _store(store, "r1", type="coordination.referral", reference="SC/1")
    _store(store, "police-1", reference=None, subjects=POLICE_TO_COG)
    _store(store, "police-2", reference=None, subjects=POLICE_TO_COG)
    _store(store, "health-1", sender="swbh", subjects=POLICE_TO_COG)  # a reference only
    _store(store, "police-3", reference=None, subjects=POLICE_TO_COG)
    store.hide(["police-3"], "Consent withdrawn.", T0)
    client, _ = make_client(kind="hub", party="cog-west-bromwich")
    token = sign_in(client)

    r = client.post("/records/search", data={"csrf": token, "nhs_number": "9990025312"})
    assert "No record found with that NHS number." in r.text
    said = r.text[r.text.index('id="unsearchable"') :].split("</p>")[0]
    assert 'data-count="3"' in said  # police-1, police-2, health-1
    assert "3 record(s) shared with Cog-West-Bromwich name no child by NHS number" in said
    assert "may still be here" in said
    assert acks.sent == []  # counted, not opened
    assert [p for p in ("police-1", "police-2", "health-1") if p in r.text] == []  # no ids

    r = client.post("/records/search", data={"csrf": token, "nhs_number": NHS})
    assert re.findall(r'class="record-row" data-event="(\w+)"', r.text) == ["r1"]
    assert 'data-count="3"' in r.text  # said when something was found, too
    assert acks.sent == [("r1", USER, "early_help")]  # the record found, nothing more

    r = client.post("/records/search", data={"csrf": token, "reference": "NOPE/1"})
    assert "No record found with that reference." in r.text
    said = r.text[r.text.index('id="unsearchable"') :].split("</p>")[0]
    assert "2 record(s) shared with Cog-West-Bromwich carry no reference" in said


def test_a_desk_whose_records_all_carry_it_says_the_search_missed_none(
    make_client: Make, store: DeskStore
) -> None:
    _store(store, "e1")
    client, _ = make_client()
    token = sign_in(client)
    r = client.post("/records/search", data={"csrf": token, "reference": "WMP/26/1"})
    assert 'data-count="0"' in r.text
    assert "carries a reference, so none is missed" in r.text
    assert 'id="unsearchable"' not in client.get("/records").text  # a list, not a search


def test_a_record_whose_only_nhs_number_is_an_adults_is_said_to_be_missed_by_the_search(
    make_client: Make, store: DeskStore, acks: FakeAcks
) -> None:
    """A health record about a mother (her NHS number shared) and her child (none): the
    search finds records by the child's number, so it cannot find this one, and the page
    must not say that none is missed."""
    mother = {"role": "adult", "nhs_number": "9990025312", "given_name": "Ann"}
    _store(store, "h1", reference=None, subjects=[mother, *POLICE_TO_COG])
    client, _ = make_client(kind="hub", party="cog-tipton")
    token = sign_in(client)
    r = client.post("/records/search", data={"csrf": token, "nhs_number": "9990025312"})
    assert "No record found with that NHS number." in r.text
    said = r.text[r.text.index('id="unsearchable"') :].split("</p>")[0]
    assert 'data-count="1"' in said
    assert "1 record(s) shared with Cog-Tipton name no child by NHS number" in said
    assert "none is missed" not in said
    assert acks.sent == []
