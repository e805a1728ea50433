"""The console's disclosure log shows what the terminal's does (IG review, fix 38): an event
received about the child that went to nobody, and a consent record at when the broker
received it with its own recorded time beside."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient

from broker.audit import AuditKind, ChainWriter, KeystoreAuditSigner, KeystoreAuditVerifier
from broker.governance import AuditStore
from broker.keys import FileKeyStore
from broker.linkage import Linker
from broker.principals import Principal
from tests.unit.audit.conftest import CHILD_NHS, T0, index_records
from tests.unit.console.conftest import sign_in


def test_the_childs_page_lists_an_event_that_went_to_nobody_and_when_consent_arrived(
    client: TestClient, store: AuditStore, verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    child = linker.from_nhs_number(CHILD_NHS)
    tick = iter(range(100))
    w = ChainWriter("worker:w5", clock=lambda: T0 + timedelta(hours=4, seconds=next(tick)))
    given = {"state": "given", "purposes": ["early_help"], "recipients": ["*"],
             "recorded_at": (T0 + timedelta(hours=3, minutes=59)).isoformat()}  # fmt: skip
    records = [
        w.append(AuditKind.RECEIVED, event_id="e9", party="sandwell-housing",
                 subject_keys=[child], data={"type": "housing.eviction_risk"}),
        w.append(AuditKind.CONSENT_RECORDED, event_id="c9", party="sandwell-coord",
                 subject_keys=[child], data=given),
    ]  # fmt: skip
    records.append(w.checkpoint(KeystoreAuditSigner(keys, Principal.WORKER)))
    assert index_records(store, verifier, records, start=400).breaks == []
    token = sign_in(client)
    r = client.post(
        "/subjects", data={"nhs_number": CHILD_NHS, "purpose": "complaint", "csrf": token}
    )
    assert r.status_code == 200
    row = re.search(r'<tr class="received not_shared">(.*?)</tr>', r.text, re.S)
    assert row, r.text
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    assert cells[0] == "2026-11-22 12:00:00"
    assert cells[1] == "received, shared with no one"
    assert (cells[3], cells[4]) == ("sandwell-housing", "no one")
    assert "no-recipient" in cells[5]
    assert "housing.eviction_risk" in cells[2]
    consent = re.search(r'<tr class="consent ">(.*?)</tr>', r.text, re.S)
    assert consent, r.text
    assert "recorded 2026-11-22 11:59:00, received 2026-11-22 12:00:01" in consent.group(1)
