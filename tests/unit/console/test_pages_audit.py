"""What the console's pages show and what their look-up records hold."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from broker.audit import AuditKind, AuditRecord, KeystoreAuditVerifier
from broker.keys import FileKeyStore
from broker.linkage import Linker
from broker.policy import load_bundle
from tests.unit.audit.conftest import CHILD_NHS, decision, index_records
from tests.unit.audit.test_disclosure_grounds import signed, two_agreements
from tests.unit.audit.test_encompass import (
    DEADLINE,
    SCHOOL_A,
    EncompassChain,
    encompass_notice_data,
)
from tests.unit.console.conftest import Clock, IndexingSink, sign_in

POLICIES = Path(__file__).parents[3] / "policies"
EVENT = "6f1c2b9e-0000-4000-8000-000000000001"


def review_probe(client: TestClient, sink: IndexingSink, event_id: str, recipient: str) -> object:
    token = sign_in(client)
    client.post("/overrides/review", data={"event_id": event_id, "recipient": recipient,
                                           "finding": "justified", "csrf": token})  # fmt: skip
    probe = [q for q in sink.queries() if q.data["page"] == "overrides.review"][-1]
    return probe.data["detail"]


@pytest.mark.parametrize(
    ("event_id", "recipient"),
    [(CHILD_NHS, "2016-03-02"), ("999.701.7463", "Jane.Smith"), ("e1", "02-03-2016")],
)
def test_a_hand_made_review_post_records_no_nhs_number_or_birth_date(
    make_client: Callable[..., TestClient], indexed: list[AuditRecord], sink: IndexingSink,
    event_id: str, recipient: str,
) -> None:  # fmt: skip
    client = make_client(policy=load_bundle(POLICIES))
    detail = review_probe(client, sink, event_id, recipient)
    assert detail == {"event_id": "(not an identifier)", "recipient": "(not an identifier)"}
    for typed in (event_id, recipient):
        if len(typed) >= 10:  # ("e1" could turn up in any hash)
            assert all(typed not in r.to_bytes().decode() for r in sink.records)


def test_a_review_post_keeps_an_event_uuid_and_a_party_of_the_bundle(
    make_client: Callable[..., TestClient], indexed: list[AuditRecord], sink: IndexingSink
) -> None:
    client = make_client(policy=load_bundle(POLICIES))
    detail = review_probe(client, sink, EVENT, "wolverhampton-mash")
    assert detail == {"event_id": EVENT, "recipient": "wolverhampton-mash"}


def test_a_review_post_naming_an_indexed_decision_keeps_its_ids_without_a_bundle(
    client: TestClient, sink: IndexingSink
) -> None:
    """The ids of a decision the log already holds; but a party unknown without a bundle
    is not taken on trust."""
    assert review_probe(client, sink, "e1", "coord") == {"event_id": "e1", "recipient": "coord"}
    assert review_probe(client, sink, EVENT, "coord-typo") == {
        "event_id": EVENT, "recipient": "(not an identifier)",
    }  # fmt: skip


def test_the_dashboard_records_the_children_of_the_late_encompass_notices_it_shows(
    make_client: Callable[..., TestClient], keys: FileKeyStore, linker: Linker,
    verifier: KeystoreAuditVerifier, clock: Clock, sink: IndexingSink,
) -> None:  # fmt: skip
    chain = EncompassChain(keys, linker)
    chain.decided("e-open", SCHOOL_A, encompass_notice_data())
    assert index_records(sink.store, verifier, chain.signed()).breaks == []
    clock.now = DEADLINE + timedelta(hours=2)
    client = make_client()
    sign_in(client)
    assert "e-open" in client.get("/").text
    [query] = [q for q in sink.queries() if q.data["page"] == "dashboard"]
    child = linker.from_nhs_number(CHILD_NHS)
    assert query.subject_keys == (child,)
    assert [q.data["page"] for q in sink.store.subject_lookups(child)] == ["dashboard"]


def test_the_dashboard_shows_encompass_notices_never_sent_and_records_their_children(
    make_client: Callable[..., TestClient], keys: FileKeyStore, linker: Linker,
    verifier: KeystoreAuditVerifier, clock: Clock, sink: IndexingSink,
) -> None:  # fmt: skip
    """Refused for want of the school's key: never to be read, shown before any deadline."""
    chain = EncompassChain(keys, linker)
    chain.decided("e-nokey", SCHOOL_A, decision(
        "not_shared", recipient_kind="school", reason="recipient-key-unavailable",
    ))  # fmt: skip
    assert index_records(sink.store, verifier, chain.signed()).breaks == []
    clock.now = DEADLINE - timedelta(days=2)
    client = make_client()
    sign_in(client)
    page = client.get("/").text
    assert re.search(r'id="encompass-unsent">1</span> Encompass notice never sent', page)
    assert "<code>e-nokey</code>" in page
    [query] = [q for q in sink.queries() if q.data["page"] == "dashboard"]
    assert query.subject_keys == (linker.from_nhs_number(CHILD_NHS),)


def subject_page(client: TestClient) -> str:
    token = sign_in(client)
    return client.post("/subjects", data={"nhs_number": CHILD_NHS, "purpose": "complaint",
                                          "csrf": token}).text  # fmt: skip


def test_find_a_child_shows_the_fields_withheld_and_the_consent_state(
    client: TestClient,
) -> None:
    page = subject_page(client)
    assert "<th>Fields not sent</th>" in page  # "withheld" read as kept from the family
    assert "Fields withheld" not in page
    assert "Fields not sent: fields the sharing agreement covers" in page
    assert re.search(r'class="withheld"><small>address</small>', page)  # in words
    assert "<th>Consent</th>" in page


def test_find_a_child_and_agreements_show_a_share_under_two_agreements_under_both(
    make_client: Callable[..., TestClient], keys: FileKeyStore, linker: Linker,
    verifier: KeystoreAuditVerifier, sink: IndexingSink,
) -> None:  # fmt: skip
    data = two_agreements()
    for g, agreement in zip(data["grounds"], ("wolverhampton-early-help", "wolverhampton-mash"),
                            strict=True):  # fmt: skip
        g["agreement_id"] = agreement
    data["agreement_id"] = "wolverhampton-early-help"
    child = linker.from_nhs_number(CHILD_NHS)
    records = signed(keys, [(AuditKind.DECIDED, EVENT, "wolverhampton-mash", data)], child)
    assert index_records(sink.store, verifier, records).breaks == []
    client = make_client(policy=load_bundle(POLICIES))
    page = subject_page(client)
    [agreements] = re.findall(r'<td class="agreement">(.*?)</td>', page)
    assert "wolverhampton-early-help" in agreements
    assert "wolverhampton-mash" in agreements
    [purposes] = re.findall(r'<td class="purpose">(.*?)</td>', page)
    assert purposes == "early_help<br>safeguarding"
    rows = client.get("/agreements").text
    for agreement in ("wolverhampton-early-help", "wolverhampton-mash"):
        row = re.search(rf"<strong>{agreement}</strong>.*?</tr>", rows, re.S)
        assert row is not None
        assert re.findall(r"<td>(\d+)</td>", row.group(0))[1:] == ["1", "0"]  # shared, overrides


def test_a_busy_verification_is_not_reported_as_a_failed_one(client: TestClient) -> None:
    token = sign_in(client)
    console = client.app.state.console  # type: ignore[attr-defined]  # the app's own state
    console.verifying._locked = True  # another officer's verification is running
    page = client.post("/chains/verify", data={"csrf": token}).text
    assert "Verification failed" not in page
    assert 'role="alert"' not in page
    assert re.search(r'role="status" id="verify-result">A verification is already running', page)


def test_a_verification_that_could_not_run_is_not_reported_as_a_failed_one(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from broker.console import _chains
    from broker.errors import AuditError

    async def cannot(_deps: object, _officer: str) -> str:
        raise AuditError("cannot open the audit index")

    monkeypatch.setattr(_chains, "verify_all", cannot)
    token = sign_in(client)
    page = client.post("/chains/verify", data={"csrf": token}).text
    assert "Verification failed" not in page
    assert 'role="alert"' not in page
    assert re.search(r'role="status" id="verify-result">Verification could not run', page)
