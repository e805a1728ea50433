"""The console's disclosure log says a share whose event was quarantined at ``deliver`` was
never sent (the CLI's formats: tests/unit/audit/test_sar_not_sent.py)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from broker.audit import AuditKind, AuditRecord, KeystoreAuditVerifier
from broker.governance import AuditStore
from broker.keys import FileKeyStore
from broker.linkage import Linker
from tests.unit.audit.conftest import CHILD_NHS, decision, index_records
from tests.unit.audit.test_sar_complete import _chain
from tests.unit.audit.test_sar_not_sent import index_share_quarantined_at_deliver
from tests.unit.console.conftest import child_log_page, sign_in


def test_the_consoles_log_says_a_share_quarantined_at_deliver_was_not_sent(
    make_client: Callable[..., TestClient], store: AuditStore, indexed: list[AuditRecord],
    verifier: KeystoreAuditVerifier, linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    index_share_quarantined_at_deliver(store, verifier, linker, keys)
    page = child_log_page(make_client())
    assert '<strong class="warn-text">not sent</strong>' in page


def test_an_overrides_own_page_says_it_was_not_sent(
    make_client: Callable[..., TestClient], store: AuditStore, indexed: list[AuditRecord],
    verifier: KeystoreAuditVerifier, linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    child = linker.from_nhs_number(CHILD_NHS)
    eid = "6f1c1e3a-0000-4000-8000-00000000aa08"
    records = _chain([
        (AuditKind.RECEIVED, {"event_id": eid, "party": "wmp", "subject_keys": [child],
                              "data": {"type": "police.domestic_incident"}}),
        (AuditKind.DECIDED, {"event_id": eid, "party": "coord", "subject_keys": [child],
                             "data": decision("shared_override")}),
        (AuditKind.QUARANTINED, {"event_id": eid, "party": "wmp",
                                 "data": {"reason": "stage-failed", "stage": "deliver"}}),
    ], keys, "worker:accord.ingress.wmp-5", hours=17)  # fmt: skip
    assert index_records(store, verifier, records, start=1700).breaks == []
    client = make_client()
    sign_in(client)
    page = client.get(f"/overrides/decision?event={eid}&recipient=coord").text
    assert '<strong class="warn-text">not sent</strong>' in page
    assert 'id="not-sent"' in page
