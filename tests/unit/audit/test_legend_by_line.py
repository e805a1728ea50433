"""A reason code's meaning in a disclosure log's legend depends on the kind of line that shows
it, and claims no more than the log knows (broker/governance/_reasons.py)."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

import pytest

from broker.audit import (
    AuditKind,
    AuditRecord,
    ChainWriter,
    KeystoreAuditSigner,
    KeystoreAuditVerifier,
)
from broker.cli._audit_render import disclosure
from broker.governance import (
    CONSENT_MEANINGS,
    NOTICE_MEANINGS,
    REASON_MEANINGS,
    AuditStore,
    LegendLine,
    disclosure_log,
    reason_legend,
)
from broker.keys import FileKeyStore
from broker.linkage import Linker
from broker.principals import Principal
from tests.unit.audit.conftest import CHILD_NHS, T0, index_records, withdrawal_chain

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


def test_a_consent_record_refused_as_party_inactive_is_explained_as_its_recorder_suspended(
    store: AuditStore, linker: Linker, keys: FileKeyStore, verifier: KeystoreAuditVerifier
) -> None:
    """broker/policy/_authority.py refuses a suspended consent authority's record with
    party-inactive: that record went to no one and was not decided, so the decision's
    meaning (sender or recipient suspended "when this was decided") is untrue of it."""
    w = ChainWriter("worker:w7", clock=lambda: T0)
    refused = {
        "state": "given",
        "purposes": ["early_help"],
        "recipients": ["*"],
        "recorded_at": T0.isoformat(),
        "valid_until": None,
        "reason": "party-inactive",
    }
    records = [
        w.append(AuditKind.CONSENT_REFUSED, event_id="c-suspended", party="sandwell-coord",
                 subject_keys=[linker.from_nhs_number(CHILD_NHS)], data=refused),
    ]  # fmt: skip
    records.append(w.checkpoint(KeystoreAuditSigner(keys, Principal.WORKER)))
    assert index_records(store, verifier, records, start=700).breaks == []
    log = disclosure_log(store, linker.from_nhs_number(CHILD_NHS))
    assert [(e.kind, e.reason) for e in log] == [("consent_refused", "party-inactive")]
    assert all(isinstance(e, LegendLine) for e in log)  # what the console passes
    legend = re.search(r'<dl id="reasons">.*?</dl>', disclosure(log, "html"), re.S)
    assert legend
    assert html.escape(CONSENT_MEANINGS["party-inactive"]) in legend.group(0)
    assert "decided" not in legend.group(0)
    assert "recorded this consent was suspended" in CONSENT_MEANINGS["party-inactive"]


def test_party_inactive_on_a_decision_and_on_a_refused_consent_is_explained_once_for_each() -> None:
    lines = [_Line("consent_refused", "party-inactive"), _Line("decision", "party-inactive")]
    assert reason_legend(lines) == [
        ("party-inactive", REASON_MEANINGS["party-inactive"]),
        ("party-inactive", CONSENT_MEANINGS["party-inactive"]),
    ]


def test_the_legend_refuses_bare_codes_with_a_type_error_saying_why() -> None:
    """A code alone cannot be explained (its meaning is its line's kind's): an old caller
    passing codes gets a TypeError that says so, not an AttributeError from inside."""
    with pytest.raises(TypeError, match="disclosure-log lines"):
        reason_legend(["party-inactive"])  # type: ignore[list-item]


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
