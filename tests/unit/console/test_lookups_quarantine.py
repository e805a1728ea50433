"""A child's earlier look-ups list an opening of a quarantined record naming them
(``accord audit quarantine --open``): the officer saw the child's details in it."""

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


def test_an_opened_quarantine_copy_naming_the_child_is_listed_with_who_and_why(
    client: TestClient, store: AuditStore, verifier: KeystoreAuditVerifier, linker: Linker,
    keys: FileKeyStore,
) -> None:  # fmt: skip
    w = ChainWriter("console:ighost.cli", clock=lambda: T0 + timedelta(hours=3))
    opened = {"officer": "ig.demo", "purpose": "subject_access", "copy": "3",
              "reason": "invalid-event"}  # fmt: skip
    cli = [w.append(AuditKind.QUARANTINE_OPENED, subject_keys=[linker.from_nhs_number(CHILD_NHS)],
                    data=opened)]  # fmt: skip
    cli.append(w.checkpoint(KeystoreAuditSigner(keys, Principal.CONSOLE)))
    assert index_records(store, verifier, cli, start=900).breaks == []
    token = sign_in(client)
    data = {"nhs_number": CHILD_NHS, "purpose": "complaint", "csrf": token}
    page = client.post("/subjects", data=data).text
    listed = re.findall(r"<li>[^<]*</li>", page.split('id="lookups"')[1].split("</ul>")[0])
    assert [re.sub(r"^<li>[^:]*:\d\d: ", "", li) for li in listed] == [
        "quarantined record opened by ig.demo for subject access (copy 3, from the command "
        "line)</li>",
    ]
