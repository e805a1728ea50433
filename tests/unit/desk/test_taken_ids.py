"""An event id two agencies chose alike: the desk keeps the first agency's record under it and
never shows it on the page of the child a flag about the second agency's record is about
(review s44c: Ruby's record, name and NHS number, appeared on Leo's page)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from broker.desk import DeskDeps, DeskStore, Flag, children_in
from broker.desk._flag import household_key
from tests.unit.desk.conftest import SECRET, T0, delivery, sign_in

Make = Callable[..., tuple[TestClient, DeskDeps]]
LEO = {"role": "child", "nhs_number": "9990025312", "given_name": "Leo",
       "family_name": "Stone", "dob": "2018-05-02", "postcode": "WV1 1AA"}  # fmt: skip


def _flag(
    store: DeskStore, child: str, letter: str, rule: str, household: str | None = None
) -> None:
    """A flag about ``child`` counting e1 and e2 (e2 its trigger), as the flag service raises."""
    store.add_flag(
        Flag(flag_id=letter * 32, party="sandwell-coord", rule=rule, title="A flag",
             child=child, event_ids=("e1", "e2"), trigger_event_id="e2", raised_at=T0,
             window_seconds=30 * 86400, household=household),
        T0,
    )  # fmt: skip


def test_a_flag_counting_the_second_agencys_record_does_not_show_the_firsts(
    make_client: Make, store: DeskStore
) -> None:
    first = delivery("e1")  # wmp's record about Ruby Hart
    store.add_delivery(first, children_in(first.view, SECRET), T0)
    b1 = delivery("e1", sender="hv-sandwell", subjects=[LEO])  # its id taken: not stored
    b2 = delivery("e2", sender="hv-sandwell", subjects=[LEO])
    [leo] = children_in(b2.view, SECRET)
    assert store.add_delivery(b1, [leo], T0) is False
    assert store.add_delivery(b2, [leo], T0) is True
    assert store.taken_among(["e1", "e2"]) == {"e1"}
    # The flag service reads the delivery topic itself: it counted hv-sandwell's e1 for Leo.
    _flag(store, leo, "f", "multi-agency")
    client, _ = make_client()
    sign_in(client)
    page = client.get(f"/child/{leo}").text
    assert "Leo" in page
    for ruby in ("Ruby", "Hart", "9993080233"):
        assert ruby not in page
    assert "a record this desk does not hold" in page  # e1, as the flag counted it


def test_a_flag_read_before_the_second_agencys_record_does_not_show_the_firsts(
    make_client: Make, store: DeskStore
) -> None:
    """Flags and deliveries come by different consumers: the flag may come first, before the
    desk knows the id is taken. Only a household flag counts other children's records."""
    first = delivery("e1")  # wmp's record about Ruby Hart
    store.add_delivery(first, children_in(first.view, SECRET), T0)
    b2 = delivery("e2", sender="hv-sandwell", subjects=[LEO])
    [leo] = children_in(b2.view, SECRET)
    store.add_delivery(b2, [leo], T0)
    _flag(store, leo, "f", "multi-agency")
    client, _ = make_client()
    sign_in(client)
    page = client.get(f"/child/{leo}").text
    for ruby in ("Ruby", "Hart", "9993080233"):
        assert ruby not in page
    assert "a record this desk does not hold" in page


def test_a_household_flags_record_at_another_address_is_not_shown(
    make_client: Make, store: DeskStore
) -> None:
    ruby = {"role": "child", "nhs_number": "9993080233", "given_name": "Ruby",
            "family_name": "Hart", "dob": "2016-02-11", "postcode": "B70 8NR",
            "address": "1 Elsewhere Road"}  # fmt: skip
    at_leo = {**LEO, "address": "12 High St"}
    first = delivery("e1", subjects=[ruby])
    store.add_delivery(first, children_in(first.view, SECRET), T0)
    b2 = delivery("e2", sender="hv-sandwell", subjects=[at_leo])
    [leo] = children_in(b2.view, SECRET)
    store.add_delivery(b2, [leo], T0)
    household = household_key(SECRET, at_leo)
    _flag(store, leo, "h", "household", household=household)
    client, _ = make_client()
    sign_in(client)
    page = client.get(f"/child/{leo}").text
    for shown in ("Ruby", "Hart", "9993080233"):
        assert shown not in page
