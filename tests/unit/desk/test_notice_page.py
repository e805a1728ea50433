"""An Operation Encompass notice names the sending police force by its name, as the record
page does, and calls the child the school's pupil; other pages keep their labels."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi.testclient import TestClient

from broker.desk import DeskDeps, DeskStore, children_in
from tests.unit.desk.conftest import SECRET, T0, delivery, sign_in

Make = Callable[..., tuple[TestClient, DeskDeps]]
NAMES = {"wmp": "West Midlands Police", "sandwell-coord": "Sandwell Early Help"}
PUPIL = {"given_name": "Ruby", "family_name": "Hart", "dob": "2016-02-11"}


def _labels(page: str) -> list[str]:
    return re.findall(r"<dt>([^<]*)</dt>", page)


def test_a_notice_names_the_police_force_and_its_pupil(make_client: Make, store: DeskStore) -> None:
    """The school's view carries no role (the agreement shares the child's name only)."""
    notice = delivery("n1", recipient="school-146201", type="police.domestic_incident",
                      subjects=[PUPIL])  # fmt: skip
    store.add_delivery(notice, [], T0)
    client, _ = make_client(kind="school", party="school-146201", party_names=NAMES)
    sign_in(client)
    page = client.get("/notice/n1").text
    assert "<dt>From</dt><dd>West Midlands Police</dd>" in page
    assert "<dd>wmp</dd>" not in page
    assert "Pupil" in _labels(page)
    assert "Subject" not in _labels(page)
    assert 'data-role="subject"' in page  # the view's own role, for tests and tools


def test_a_notice_whose_view_names_the_role_calls_the_child_the_pupil(
    make_client: Make, store: DeskStore
) -> None:
    notice = delivery("n1", recipient="school-146201", type="police.domestic_incident")
    store.add_delivery(notice, [], T0)
    client, _ = make_client(kind="school", party="school-146201", party_names=NAMES)
    sign_in(client)
    labels = _labels(client.get("/notice/n1").text)
    assert "Pupil" in labels
    assert "Child" not in labels


def test_the_record_page_and_timeline_keep_their_labels(
    make_client: Make, store: DeskStore
) -> None:
    d = delivery("e1")
    store.add_delivery(d, children_in(d.view, SECRET), T0)
    client, _ = make_client(party_names=NAMES)
    sign_in(client)
    for url in ("/record/e1", f"/child/{children_in(d.view, SECRET)[0]}"):
        page = client.get(url).text
        assert "Child" in _labels(page), url
        assert "Pupil" not in page, url
        assert "<dt>From</dt><dd>West Midlands Police</dd>" in page, url
