"""The console's log names the condition a condition-false line's clause did not meet, from
the bundle the console loaded, as the command line's table does."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi.testclient import TestClient

from broker.audit import KeystoreAuditVerifier
from broker.governance import AuditStore
from broker.keys import FileKeyStore
from broker.linkage import Linker
from broker.policy import load_bundle
from tests.unit.audit.conftest import CHILD_NHS, index_records
from tests.unit.audit.test_condition_false_clauses import NAMED, POLICIES, WHEN, refused_chain
from tests.unit.console.conftest import sign_in


def notes_of(make_client: Callable[..., TestClient], **kw: object) -> list[str]:
    client = make_client(**kw)
    token = sign_in(client)
    page = client.post("/subjects", data={"nhs_number": CHILD_NHS, "csrf": token,
                                          "purpose": "complaint"}).text  # fmt: skip
    listed = page.split('id="disclosure-log-notes"')[1].split("</ul>")[0]
    return [" ".join(n.split()) for n in re.findall(r"<li>(.*?)</li>", listed, re.S)]


def test_the_childs_log_names_the_condition_not_met_from_the_loaded_bundle(
    make_client: Callable[..., TestClient], store: AuditStore, verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    policy = load_bundle(POLICIES)
    records = refused_chain(linker, keys, policy.version)
    assert index_records(store, verifier, records, start=800).breaks == []
    [note] = [n for n in notes_of(make_client, policy=policy) if NAMED in n]
    assert WHEN.replace(">", "&gt;").replace("&&", "&amp;&amp;") in note


def test_without_a_bundle_the_console_says_it_has_none_to_read_the_condition_from(
    make_client: Callable[..., TestClient], store: AuditStore, verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    records = refused_chain(linker, keys, "sha256:older")
    assert index_records(store, verifier, records, start=800).breaks == []
    [note] = [n for n in notes_of(make_client) if NAMED in n]
    assert "no policy bundle is loaded here" in note
