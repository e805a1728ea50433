"""The console's disclosure log says a share whose event was quarantined at ``deliver`` was
never sent (the CLI's formats: tests/unit/audit/test_sar_not_sent.py)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from broker.audit import AuditRecord, KeystoreAuditVerifier
from broker.governance import AuditStore
from broker.keys import FileKeyStore
from broker.linkage import Linker
from tests.unit.audit.conftest import CHILD_NHS
from tests.unit.audit.test_sar_not_sent import index_share_quarantined_at_deliver
from tests.unit.console.conftest import sign_in


def test_the_consoles_log_says_a_share_quarantined_at_deliver_was_not_sent(
    make_client: Callable[..., TestClient], store: AuditStore, indexed: list[AuditRecord],
    verifier: KeystoreAuditVerifier, linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    index_share_quarantined_at_deliver(store, verifier, linker, keys)
    client = make_client()
    token = sign_in(client)
    page = client.post(
        "/subjects",
        data={"nhs_number": CHILD_NHS, "purpose": "subject_access_request", "csrf": token},
    ).text
    assert '<strong class="warn-text">not sent</strong>' in page
