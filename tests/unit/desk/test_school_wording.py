"""A school's pages in plain words: the event type as words, a notice's pupil before what
happened, and no search by NHS number where no agreement sends the school one."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi.testclient import TestClient

from broker.desk import DeskDeps, DeskStore
from broker.desk._received import receives_nhs_numbers
from broker.desk._show import event_words
from broker.events import EVENT_TYPES
from broker.policy import load_bundle
from tests.unit.desk.conftest import T0, delivery, sign_in

Make = Callable[..., tuple[TestClient, DeskDeps]]
SCHOOL = "school-146201"
PUPIL = {"given_name": "Ruby", "family_name": "Hart", "dob": "2016-02-11"}


def _notice(store: DeskStore) -> None:
    store.add_delivery(
        delivery("n1", recipient=SCHOOL, type="police.domestic_incident", subjects=[PUPIL],
                 child_voice="Said she hid upstairs."), [], T0,
    )  # fmt: skip


def test_a_notice_says_what_in_words_and_names_the_pupil_before_what_happened(
    make_client: Make, store: DeskStore
) -> None:
    _notice(store)
    client, _ = make_client(kind="school", party=SCHOOL)
    sign_in(client)
    page = client.get("/notice/n1").text
    assert "<dt>What</dt><dd" in page
    what = re.search(r"<dt>What</dt><dd[^>]*>([^<]*)</dd>", page)
    assert what is not None
    assert what.group(1) == "Domestic abuse incident (police)"
    labels = re.findall(r"<dt>([^<]*)</dt>", page)
    assert labels.index("Pupil") < labels.index("Summary")
    assert labels.index("Pupil") < labels.index("Child&#39;s voice")
    record = client.get("/record/n1").text  # the record page, for a school, in words too
    assert ">Domestic abuse incident (police)</dd>" in record


def test_a_schools_records_page_in_words_and_without_an_nhs_search_it_cannot_use(
    make_client: Make, store: DeskStore
) -> None:
    _notice(store)
    client, _ = make_client(kind="school", party=SCHOOL, nhs_numbers_received=False)
    sign_in(client)
    page = client.get("/records").text
    assert "<td>Domestic abuse incident (police)</td>" in page
    assert 'name="nhs_number"' not in page
    assert "No agreement sends School-146201 a pupil's NHS number" in page


def test_a_school_an_agreement_sends_nhs_numbers_keeps_the_search(
    make_client: Make, store: DeskStore
) -> None:
    client, _ = make_client(kind="school", party=SCHOOL, nhs_numbers_received=True)
    sign_in(client)
    page = client.get("/records").text
    assert 'name="nhs_number"' in page
    assert 'id="no-nhs-search"' not in page


def test_other_desks_keep_the_code_and_the_search(make_client: Make, store: DeskStore) -> None:
    store.add_delivery(delivery("e1"), [], T0)
    client, _ = make_client(nhs_numbers_received=False)  # a co-ordinating team's
    sign_in(client)
    page = client.get("/records").text
    assert "<td>police.child_concern</td>" in page
    assert 'name="nhs_number"' in page


def test_the_example_bundle_sends_no_school_an_nhs_number() -> None:
    bundle = load_bundle("policies").bundle
    assert receives_nhs_numbers(bundle, SCHOOL) is False
    assert receives_nhs_numbers(bundle, "sandwell-coord") is True


def test_every_event_type_has_words() -> None:
    assert all(event_words(t) != t for t in EVENT_TYPES)
    assert event_words("police.later_type") == "police.later_type"
