"""A child's earlier look-ups say where each was made, in the chain page's words for a
verification: from the console, or from the command line (``accord audit subject``)."""

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


def test_each_earlier_look_up_says_whether_it_was_made_on_the_console_or_the_command_line(
    client: TestClient, store: AuditStore, verifier: KeystoreAuditVerifier, linker: Linker,
    keys: FileKeyStore,
) -> None:  # fmt: skip
    # What `accord audit subject --as ig.demo` writes, on the command line's own chain.
    w = ChainWriter("console:ighost.cli", clock=lambda: T0 + timedelta(hours=3))
    lookup = {"officer": "ig.demo", "page": "cli.subject",
              "detail": {"purpose": "subject_access_request"}}  # fmt: skip
    cli = [w.append(AuditKind.CONSOLE_QUERY, subject_keys=[linker.from_nhs_number(CHILD_NHS)],
                    data=lookup)]  # fmt: skip
    cli.append(w.checkpoint(KeystoreAuditSigner(keys, Principal.CONSOLE)))
    assert index_records(store, verifier, cli, start=900).breaks == []
    token = sign_in(client)
    data = {"nhs_number": CHILD_NHS, "purpose": "complaint", "csrf": token}
    client.post("/subjects", data=data)
    page = client.post("/subjects", data=dict(data, purpose="audit_sample")).text
    listed = re.findall(r"<li>[^<]*</li>", page.split('id="lookups"')[1].split("</ul>")[0])
    assert [re.sub(r"^<li>[^:]*:\d\d: ", "", li) for li in listed] == [
        "ig.demo from the command line (subject access request)</li>",
        "ig.jo from the console (complaint)</li>",
    ]
