"""The console's page for a child shows each transformed field as what was sent, and a share
that needed no consent, or was a safeguarding override, as such (as the SAR answer does,
tests/unit/audit/test_sar_sent_as.py and test_sar_consent_needed.py), and says once what
travels with every shared record."""

from __future__ import annotations

import html
import re
from collections.abc import Callable

from fastapi.testclient import TestClient

from broker.audit import KeystoreAuditVerifier
from broker.governance import AuditStore
from broker.governance._sent import ALWAYS_SENT, CONSENT_STATE_MEANINGS
from broker.keys import FileKeyStore
from broker.linkage import Linker
from tests.unit.audit.conftest import decision
from tests.unit.audit.test_sar_consent_needed import NOT_NEEDED, OVERRIDE_NOTE, _decided
from tests.unit.audit.test_sar_sent_as import _transformed_share
from tests.unit.console.conftest import child_log_page, sign_in


def test_the_consoles_page_for_the_child_shows_what_was_sent_and_the_note_once(
    make_client: Callable[..., TestClient], store: AuditStore,
    verifier: KeystoreAuditVerifier, keys: FileKeyStore, linker: Linker,
) -> None:  # fmt: skip
    _transformed_share(store, verifier, linker, keys)
    page = child_log_page(make_client())
    assert "NHS number (as a pseudonym)" in page
    assert "subject.nhs_number" not in page
    assert page.count(html.escape(ALWAYS_SENT)) == 1


def test_the_consoles_page_says_a_share_needed_no_consent(
    make_client: Callable[..., TestClient], store: AuditStore,
    verifier: KeystoreAuditVerifier, keys: FileKeyStore, linker: Linker,
) -> None:  # fmt: skip
    _decided(store, verifier, linker, keys, ("n1", decision("shared", consent_rule="not_required")))
    page = child_log_page(make_client())
    assert html.escape(NOT_NEEDED) in page
    assert page.count(html.escape(CONSENT_STATE_MEANINGS["not needed"])) == 1


def test_the_consoles_page_says_an_override_against_a_refusal_was_overridden(
    make_client: Callable[..., TestClient], store: AuditStore,
    verifier: KeystoreAuditVerifier, keys: FileKeyStore, linker: Linker,
) -> None:  # fmt: skip
    data = decision(
        "shared_override", consent_rule="required_unless_safeguarding", consent="refused"
    )
    _decided(store, verifier, linker, keys, ("o1", data))
    page = child_log_page(make_client())
    assert html.escape(f"refused ({OVERRIDE_NOTE})") in page
    assert "not needed" not in page
    assert page.count(html.escape(CONSENT_STATE_MEANINGS["overridden"])) == 1


def test_the_override_queue_says_consent_and_fields_in_the_words_of_the_childs_page(
    make_client: Callable[..., TestClient], store: AuditStore,
    verifier: KeystoreAuditVerifier, keys: FileKeyStore, linker: Linker,
) -> None:  # fmt: skip
    data = decision(
        "shared_override", consent_rule="required_unless_safeguarding", consent="refused",
        fields_shared=["subject.name", "subject.nhs_number", "event.need_level"],
        transforms={"subject.nhs_number": "pseudonym"},
    )  # fmt: skip
    _decided(store, verifier, linker, keys, ("o1", data))
    client = make_client()
    sign_in(client)
    page = client.get("/overrides").text
    row = re.search(r'<tr data-event="o1".*?</tr>', page, re.S)
    assert row
    assert html.escape(f"refused ({OVERRIDE_NOTE})") in row.group(0)
    assert "name, NHS number (as a pseudonym), level of need" in row.group(0)
    assert "subject." not in row.group(0)
