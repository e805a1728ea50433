"""The console shows consent withdrawals: on the child's page, and undelivered notices on the
dashboard (IG review finding 2)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from broker.audit import AuditRecord, KeystoreAuditVerifier
from broker.keys import FileKeyStore
from broker.linkage import Linker
from tests.unit.audit.conftest import (
    CHILD_NHS,
    OTHER_CHILD_NHS,
    OTHER_WITHDRAWAL_ID,
    WITHDRAWAL_ID,
    index_records,
    withdrawal_chain,
)
from tests.unit.console.conftest import IndexingSink, sign_in


@pytest.fixture
def withdrawn(
    sink: IndexingSink, indexed: list[AuditRecord], verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> list[AuditRecord]:  # fmt: skip
    records = withdrawal_chain(linker, keys)
    assert index_records(sink.store, verifier, records, start=500).breaks == []
    return records


def test_the_childs_page_lists_the_withdrawal_its_notices_and_the_deliveries(
    make_client: Callable[..., TestClient], withdrawn: list[AuditRecord]
) -> None:
    client = make_client()
    token = sign_in(client)
    page = client.post("/subjects", data={"nhs_number": CHILD_NHS, "csrf": token,
                                          "purpose": "subject_access_request"}).text  # fmt: skip
    kinds = re.findall(r'<tr class="([a-z_]+) ', page)
    assert kinds.count("delivered") == 2
    assert kinds.count("withdrawal_notice") == 2
    assert [k for k in kinds if k.startswith("consent")] == ["consent", "consent_refused"]
    assert "consent withdrawn" in page
    assert "sandwell-coord" in page
    assert WITHDRAWAL_ID in page
    # The notice school-1 never got says so, and what to do about it.
    assert "recipient-key-unavailable: tell school-1 by other means" in page
    assert OTHER_WITHDRAWAL_ID not in page
    assert "e-other" not in page


def test_the_dashboard_lists_undelivered_withdrawal_notices_and_records_their_children(
    make_client: Callable[..., TestClient], withdrawn: list[AuditRecord], sink: IndexingSink,
    linker: Linker,
) -> None:  # fmt: skip
    client = make_client()
    sign_in(client)
    page = client.get("/").text
    assert re.search(r'id="withdrawals-undelivered">2<', page)
    listed = page[page.index('id="withdrawals-undelivered-list"') :]
    listed = listed[: listed.index("</table>")]
    assert re.findall(r"<tr><td>[^<]+</td><td>([^<]+)</td>", listed) == ["school-1", "hub-a"]
    assert "<code>e2</code>" in listed
    assert "coord<" not in listed  # its notice was delivered
    [query] = [q for q in sink.queries() if q.data["page"] == "dashboard"]
    assert set(query.subject_keys) == {
        linker.from_nhs_number(CHILD_NHS),
        linker.from_nhs_number(OTHER_CHILD_NHS),
    }


def test_the_dashboard_lists_no_notices_when_none_went_undelivered(client: TestClient) -> None:
    sign_in(client)
    page = client.get("/").text
    assert re.search(r'id="withdrawals-undelivered">0<', page)
    assert 'id="withdrawals-undelivered-list"' not in page


def test_consent_lines_say_whom_they_cover_in_words_and_a_refused_one_is_no_consent(
    make_client: Callable[..., TestClient], withdrawn: list[AuditRecord]
) -> None:
    """A screen reader read the To column's ``*`` as "star" and ``kind:hub`` as code, and a
    refused record's Consent cell said "given", as if that consent stood (a11y review)."""
    client = make_client()
    token = sign_in(client)
    page = client.post("/subjects", data={"nhs_number": CHILD_NHS, "csrf": token,
                                          "purpose": "subject_access_request"}).text  # fmt: skip
    rows = dict(re.findall(r'<tr class="(consent(?:_refused)?) [^"]*">(.*?)</tr>', page, re.S))
    cells = {kind: re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for kind, row in rows.items()}
    to, consent = 4, 10  # the To and Consent columns
    assert cells["consent"][to] == "every recipient"
    assert cells["consent"][consent] == "withdrawn"
    assert cells["consent_refused"][consent] == "— (record refused)"
    assert "given" not in cells["consent_refused"][consent]
