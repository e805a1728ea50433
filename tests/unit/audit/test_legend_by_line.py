"""A reason code's meaning in a disclosure log's legend depends on the kind of line that shows
it, and claims no more than the log knows (broker/governance/_reasons.py)."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from broker.audit import AuditRecord, KeystoreAuditVerifier
from broker.cli._audit_render import disclosure
from broker.governance import REASON_MEANINGS, AuditStore, disclosure_log, reason_legend
from broker.governance._reasons import NOTICE_MEANINGS
from broker.keys import FileKeyStore
from broker.linkage import Linker
from tests.unit.audit.conftest import CHILD_NHS, index_records, withdrawal_chain

KEY = "recipient-key-unavailable"


@dataclass(frozen=True)
class _Line:
    kind: str
    reason: str | None


def test_an_undelivered_notice_is_explained_as_a_notice_not_as_a_share_the_rules_allowed(
    store: AuditStore, indexed: list[AuditRecord], linker: Linker, keys: FileKeyStore,
    verifier: KeystoreAuditVerifier,
) -> None:  # fmt: skip
    """No rules decide a notice, and its recipient had the child's data already."""
    assert index_records(store, verifier, withdrawal_chain(linker, keys), start=500).breaks == []
    log = disclosure_log(store, linker.from_nhs_number(CHILD_NHS))
    assert {e.kind for e in log if e.reason == KEY} == {"withdrawal_notice"}
    page = disclosure(log, "html")
    legend = re.search(r'<dl id="reasons">.*?</dl>', page, re.S)
    assert legend
    assert "The rules would have allowed it" not in legend.group(0)
    assert html.escape(NOTICE_MEANINGS[KEY]) in legend.group(0)
    assert "withdrawal notice" in NOTICE_MEANINGS[KEY]
    assert "other means" in NOTICE_MEANINGS[KEY]


def test_a_code_shown_on_a_decision_and_on_a_notice_is_explained_once_for_each() -> None:
    lines = [_Line("decision", KEY), _Line("withdrawal_notice", KEY), _Line("decision", KEY)]
    assert reason_legend(lines) == [(KEY, REASON_MEANINGS[KEY]), (KEY, NOTICE_MEANINGS[KEY])]
    assert reason_legend([_Line("decision", KEY)]) == [(KEY, REASON_MEANINGS[KEY])]


def test_party_inactive_names_only_the_sender_and_the_recipient() -> None:
    """broker/policy/_decide.py checks those two; a suspended consent authority's record
    counts for nothing, which reads consent-missing."""
    text = REASON_MEANINGS["party-inactive"]
    assert "consent" not in text
    assert "sending" in text
    assert "suspended" in text


def test_quarantined_does_not_say_the_information_is_held() -> None:
    """A worker with no governance key audits a quarantine with ``held: false``: the log
    cannot tell the two apart, so the meaning is true either way."""
    text = REASON_MEANINGS["quarantined"]
    assert "held" not in text
    assert text.startswith("Processing the information failed, so none of it was sent")
