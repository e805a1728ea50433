"""The console's Find a child, for a child without an NHS number: by name and date of birth."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from broker.audit import AuditRecord
from broker.audit import KeystoreAuditVerifier as Verifier
from broker.governance import AuditStore
from broker.keys import FileKeyStore
from broker.linkage import Linker
from tests.unit.audit.conftest import index_records
from tests.unit.audit.test_demographic_lookup import (
    PERSONAL,
    POSTCODE,
    RECORDED,
    TYPED,
    demographic_chain,
    worker_key,
)
from tests.unit.console.conftest import IndexingSink, sign_in


@pytest.fixture
def filed(
    store: AuditStore, verifier: Verifier, linker: Linker, keys: FileKeyStore,
    indexed: list[AuditRecord],
) -> None:  # fmt: skip
    records = demographic_chain(linker, keys)
    assert index_records(store, verifier, records, start=1000).breaks == []


def search(client: TestClient, token: str, **fields: str) -> tuple[int, str]:
    form = {"nhs_number": "", "given_name": "", "family_name": "", "dob": "", "postcode": "",
            "purpose": "subject_access_request", "csrf": token, **fields}  # fmt: skip
    r = client.post("/subjects", data=form)
    return r.status_code, r.text


def events_shown(page: str) -> list[str]:
    return re.findall(r"<td><code>(e\d+)</code>", page)


@pytest.mark.usefixtures("filed")
def test_a_child_is_found_by_name_date_of_birth_and_postcode_typed_without_accents(
    client: TestClient, sink: IndexingSink, linker: Linker
) -> None:
    token = sign_in(client)
    status, page = search(client, token, **TYPED, postcode="dy4 7aa")
    assert status == 200
    assert events_shown(page) == ["e10", "e11", "e10"]  # with the postcode, without, opened
    assert "with postcode: yes" in page
    matched = re.findall(r'<td class="matched"><small>([^<]*)</small></td>', page)
    assert matched == ["name, date of birth, postcode", "name and date of birth only",
                       "name, date of birth, postcode"]  # fmt: skip
    [query] = [q for q in sink.queries() if q.data["page"] == "subject"]
    assert query.subject_keys == (
        worker_key(linker, **RECORDED, postcode=POSTCODE), worker_key(linker, **RECORDED),
    )  # fmt: skip
    detail = {"purpose": "subject_access_request", "searched_by": "demographics",
              "with_postcode": "yes"}  # fmt: skip
    assert query.data["detail"] == detail
    # The audit record holds subject keys, never the name, date of birth or postcode.
    written = b"".join(r.to_bytes() for r in sink.records).decode()
    assert not any(p in written for p in PERSONAL)
    assert not any(p in page for p in PERSONAL)


@pytest.mark.usefixtures("filed")
def test_without_the_postcode_the_page_says_so_and_shows_what_was_decided_without_one(
    client: TestClient,
) -> None:
    token = sign_in(client)
    status, page = search(client, token, **TYPED)
    assert status == 200
    assert events_shown(page) == ["e11"]
    assert "with postcode: no (records decided with a postcode are found only with it)" in page


@pytest.mark.usefixtures("filed")
def test_a_different_child_of_the_same_name_finds_nothing(client: TestClient) -> None:
    token = sign_in(client)
    status, page = search(client, token, **dict(TYPED, dob="2016-03-06"), postcode=POSTCODE)
    assert status == 200
    assert 'id="no-entries"' in page
    assert events_shown(page) == []


@pytest.mark.usefixtures("filed")
def test_an_earlier_look_up_by_name_is_listed_by_a_later_one_with_the_postcode(
    client: TestClient,
) -> None:
    token = sign_in(client)
    search(client, token, **TYPED, purpose="complaint")
    _, page = search(client, token, **TYPED, postcode=POSTCODE)
    assert re.search(r"<li>[^<]*ig\.jo from the console \(complaint\)</li>", page)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"nhs_number": "9997017463", **TYPED}, "not both"),
        ({"nhs_number": "9997017463", "postcode": POSTCODE},
         "You gave the NHS number and the postcode. Give the NHS number or the name and date "
         "of birth, not both."),
        ({"nhs_number": "9997017463", "given_name": "Sian", "dob": "2016-03-04"},
         "You gave the NHS number and the given name and the date of birth. Give"),
        ({**TYPED, "postcode": "DY4 7AA DY4 7AA"}, "Postcode: not the shape of a UK postcode"),
        ({}, "Give the NHS number, or the given name, family name and date of birth."),
        ({"given_name": "Sian", "dob": "2016-03-04"}, "also needs the family name."),
        ({**TYPED, "dob": "2016-02-30"}, "Date of birth: not a real date"),
        ({**TYPED, "given_name": "?"}, "Given name: needs at least one letter"),
        ({**TYPED, "postcode": "DY4"}, "Postcode: not the shape of a UK postcode"),
    ],
)  # fmt: skip
def test_a_form_that_names_no_one_child_is_explained_and_nothing_is_looked_up(
    client: TestClient, sink: IndexingSink, fields: dict[str, str], message: str
) -> None:
    token = sign_in(client)
    status, page = search(client, token, **fields)
    assert status == 400
    assert message in page
    summary = page.split('class="error-summary"')[1].split("</div>")[0]
    assert message in summary
    assert "--" not in summary  # the form's words
    assert not any(p in page for p in (*PERSONAL, "9997017463", "2016-02-30"))
    assert [q for q in sink.queries() if q.data["page"] == "subject"] == []


@pytest.mark.usefixtures("indexed")
def test_a_child_filed_under_an_nhs_number_looked_up_by_name_is_not_said_to_have_no_decisions(
    client: TestClient,
) -> None:
    """By name, an empty log never reads as nothing held: the page says a child with an NHS
    number is found only by it, and to ask the requester for it."""
    token = sign_in(client)
    status, page = search(client, token, **TYPED, postcode=POSTCODE)
    assert status == 200
    assert events_shown(page) == []
    assert "No decision about this child" not in page
    [empty] = re.findall(r'<p id="no-entries">([^<]*)</p>', page)
    assert "found only by that number" in empty
    assert "ask the requester for it" in empty
    assert "records filed under an NHS number are found only by that number" in page


@pytest.mark.usefixtures("filed")
def test_a_look_up_by_name_that_finds_records_still_says_an_nhs_number_finds_others(
    client: TestClient,
) -> None:
    token = sign_in(client)
    _, page = search(client, token, **TYPED, postcode=POSTCODE)
    [searched] = re.findall(r'<span id="searched">([^<]*)</span>', page)
    assert "records filed under an NHS number are found only by that number" in searched
