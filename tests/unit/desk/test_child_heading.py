"""The timeline's heading says who the child is (from the records the page acknowledged),
never in the page's title or address; the household's records are counted apart."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

from fastapi.testclient import TestClient

from broker.desk import DeskDeps, DeskStore, Flag, children_in
from tests.unit.desk.conftest import SECRET, T0, FakeAcks, delivery, sign_in

Make = Callable[..., tuple[TestClient, DeskDeps]]
SIBLING = {"role": "child", "nhs_number": "9990025312", "given_name": "Leo",
           "family_name": "Hart", "dob": "2018-05-02", "postcode": "B70 8NR"}  # fmt: skip


def _add(store: DeskStore, event_id: str, **view: object) -> None:
    d = delivery(event_id, **view)
    store.add_delivery(d, children_in(d.view, SECRET), datetime.now(UTC))


def _heading(page: str) -> str:
    found = re.search(r"<h1>(.*?)</h1>\s*<p id=\"child-summary\">(.*?)</p>", page, re.S)
    assert found, "no heading"
    return re.sub(r"<[^>]+>", "", found.group(1) + " | " + found.group(2))


def _title(page: str) -> str:
    found = re.search(r"<title>(.*?)</title>", page, re.S)
    assert found
    return found.group(1)


def test_the_heading_names_the_child_and_the_title_does_not(
    make_client: Make, store: DeskStore
) -> None:
    _add(store, "e1")
    _add(store, "e2")
    [child] = children_in(delivery("x").view, SECRET)
    client, _ = make_client()
    sign_in(client)
    r = client.get(f"/child/{child}")
    heading = _heading(r.text)
    assert heading.startswith("Ruby Hart: multi-agency timeline")
    assert "Born 2016-02-11" in heading
    assert "2 record(s) about Ruby Hart received by Sandwell-Coord" in heading
    assert child not in heading  # a hash tells a practitioner nothing
    title = _title(r.text)
    assert [p for p in ("Ruby", "Hart", "2016-02-11", "9993080233") if p in title] == []
    assert "Ruby" not in str(r.url)


def test_a_household_flags_records_are_counted_apart_from_the_childs(
    make_client: Make, store: DeskStore
) -> None:
    _add(store, "e1")
    _add(store, "s1", subjects=[SIBLING])
    _add(store, "s2", subjects=[SIBLING])
    [child] = children_in(delivery("x").view, SECRET)
    store.add_flag(
        Flag(flag_id="f" * 32, party="sandwell-coord", rule="household-domestic-abuse",
             title="Domestic abuse at the address", child=child, event_ids=("e1", "s1", "s2"),
             trigger_event_id="s2", raised_at=T0, window_seconds=30 * 86400,
             household="h" * 32),
        T0,
    )  # fmt: skip
    client, _ = make_client()
    sign_in(client)
    heading = _heading(client.get(f"/child/{child}").text)
    assert heading.startswith("Ruby Hart:")  # the child's page, not the sibling's
    assert "Leo" not in heading
    assert "1 record(s) about Ruby Hart" in heading
    assert "2 record(s) about other children at the same address" in heading


def test_a_child_whose_records_are_all_withdrawn_is_not_named(
    make_client: Make, store: DeskStore, acks: FakeAcks
) -> None:
    """Nothing was acknowledged, so nothing of the child is shown, not even the name."""
    _add(store, "e1")
    store.hide(["e1"], "Consent withdrawn.", T0)
    [child] = children_in(delivery("x").view, SECRET)
    client, _ = make_client()
    sign_in(client)
    page = client.get(f"/child/{child}").text
    assert _heading(page).startswith("A child: multi-agency timeline")
    assert "Ruby" not in page
    assert acks.sent == []


def test_a_child_known_by_nhs_number_alone_is_named_by_it(
    make_client: Make, store: DeskStore
) -> None:
    _add(store, "e1", subjects=[{"role": "child", "nhs_number": "9993080233"}])
    [child] = children_in(delivery("x").view, SECRET)
    client, _ = make_client()
    sign_in(client)
    heading = _heading(client.get(f"/child/{child}").text)
    assert heading.startswith("The child with NHS number 9993080233: multi-agency timeline")
