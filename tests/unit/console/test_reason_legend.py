"""A child's disclosure log on the console explains the reason codes it shows, in the words
of the one table the SAR page uses too (broker/governance/_reasons.py)."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import get_args

from fastapi.testclient import TestClient
from markupsafe import escape

from broker.audit import AuditKind, ChainWriter, KeystoreAuditSigner, KeystoreAuditVerifier
from broker.cli._audit_render import disclosure
from broker.governance import (
    CONSENT_MEANINGS,
    NOTICE_MEANINGS,
    REASON_MEANINGS,
    AuditStore,
    disclosure_log,
)
from broker.keys import FileKeyStore
from broker.linkage import Linker
from broker.policy import ConsentRefusal, Reason
from broker.principals import Principal
from tests.unit.audit.conftest import CHILD_NHS, T0, decision, index_records, withdrawal_chain
from tests.unit.console.conftest import child_log_page


def _condition_false_about_the_child(
    store: AuditStore, verifier: KeystoreAuditVerifier, keys: FileKeyStore, linker: Linker
) -> None:
    w = ChainWriter("worker:w1", clock=lambda: T0)
    child = [linker.from_nhs_number(CHILD_NHS)]
    records = [
        w.append(AuditKind.DECIDED, event_id="e1", party="hub-a", subject_keys=child,
                 data=decision("not_shared", reason="condition-false")),
        w.append(AuditKind.DECIDED, event_id="e1", party="coord", subject_keys=child,
                 data=decision("shared")),
    ]  # fmt: skip
    records.append(w.checkpoint(KeystoreAuditSigner(keys, Principal("worker"))))
    assert index_records(store, verifier, records).breaks == []


def test_a_childs_log_showing_condition_false_says_what_it_means_and_no_other_code(
    make_client: Callable[..., TestClient], store: AuditStore,
    verifier: KeystoreAuditVerifier, keys: FileKeyStore, linker: Linker,
) -> None:  # fmt: skip
    _condition_false_about_the_child(store, verifier, keys, linker)
    page = child_log_page(make_client())
    legend = re.search(r'<dl id="disclosure-log-reasons".*?</dl>', page, re.S)
    assert legend, "no legend under the log"
    assert re.findall(r"<dt><code>(.*?)</code></dt>", legend.group(0)) == ["condition-false"]
    assert html.escape(REASON_MEANINGS["condition-false"]) in legend.group(0)
    assert "What the reasons mean" in page


def test_the_sar_page_explains_the_codes_it_shows_in_the_same_words(
    store: AuditStore, verifier: KeystoreAuditVerifier, keys: FileKeyStore, linker: Linker
) -> None:
    _condition_false_about_the_child(store, verifier, keys, linker)
    entries = disclosure_log(store, linker.from_nhs_number(CHILD_NHS))
    page = disclosure(entries, "html")
    legend = re.search(r'<dl id="reasons">.*?</dl>', page, re.S)
    assert legend, "no legend on the SAR page"
    assert re.findall(r"<dt><code>(.*?)</code></dt>", legend.group(0)) == ["condition-false"]
    assert html.escape(REASON_MEANINGS["condition-false"]) in legend.group(0)


def test_the_consoles_log_explains_an_undelivered_notice_as_a_notice(
    make_client: Callable[..., TestClient], store: AuditStore,
    verifier: KeystoreAuditVerifier, keys: FileKeyStore, linker: Linker,
) -> None:  # fmt: skip
    assert index_records(store, verifier, withdrawal_chain(linker, keys), start=500).breaks == []
    page = child_log_page(make_client())
    legend = re.search(r'<dl id="disclosure-log-reasons".*?</dl>', page, re.S)
    assert legend, "no legend under the log"
    assert str(escape(NOTICE_MEANINGS["recipient-key-unavailable"])) in legend.group(0)
    assert "The rules would have allowed it" not in legend.group(0)


def test_a_log_with_no_reason_code_has_no_legend() -> None:
    assert "What the reasons mean" not in disclosure([], "html")


def test_every_reason_a_decision_or_a_consent_refusal_can_give_has_a_meaning() -> None:
    """Each in the table of its line's kind: a consent_refused line's code in
    CONSENT_MEANINGS (broker/pipeline/_consent.py audits ``consent_refusal``'s answer)."""
    assert set(get_args(Reason)) <= set(REASON_MEANINGS)
    assert set(get_args(ConsentRefusal)) == set(CONSENT_MEANINGS)


def test_the_meanings_claim_no_more_than_the_log_knows() -> None:
    """A decision covers every child the information named (docs/policy-language.md §7: "not
    every child has given it"), so a consent reason is not said to be this child's own; and
    no-recipient says only that nothing about the child went to anyone (docs/governance.md)."""
    for code in ("consent-withdrawn", "consent-refused", "consent-missing"):
        assert "this child or another named in it" in REASON_MEANINGS[code]
        assert "The child's" not in REASON_MEANINGS[code]
    assert "agreement" not in REASON_MEANINGS["no-recipient"]
    assert REASON_MEANINGS["no-recipient"].startswith(
        "Nothing in this information about this child"
    )
    assert "never" not in REASON_MEANINGS["suppressed"]  # a restriction has its conditions
