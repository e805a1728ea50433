"""``consent: missing`` on a share that needed no consent reads as sharing without consent: a
SAR answer's table and page (and the console) say ``missing (not needed: ...)`` where the
decision's clause did not need it (``consent_rule`` ``not_required``), ``refused (overridden:
...)`` where it did and a safeguarding override shared anyway, and explain once each consent
state they show; JSON and CSV keep the state and add ``consent_rule``."""

from __future__ import annotations

import copy
import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from broker.audit import AuditKind, AuditRecord, KeystoreAuditVerifier
from broker.cli._audit_render import disclosure
from broker.governance import AuditStore, DisclosureEntry, disclosure_log
from broker.governance._sent import CONSENT_STATE_MEANINGS
from broker.keys import FileKeyStore
from broker.linkage import Linker
from tests.unit.audit.conftest import CHILD_NHS, decision, index_records
from tests.unit.audit.test_sar_complete import _chain
from tests.unit.policy.kit import AT, ENCOMPASS, agreement, by_recipient, consent, event, load

NOT_NEEDED = "missing (not needed: the agreement rests on its lawful basis, not consent)"
OVERRIDE_NOTE = "overridden: shared without consent under a safeguarding override, for IG review"
OVERRIDDEN = f"missing ({OVERRIDE_NOTE})"


def _decided(
    store: AuditStore, verifier: KeystoreAuditVerifier, linker: Linker, keys: FileKeyStore,
    *data: tuple[str, dict[str, Any]],
) -> list[DisclosureEntry]:  # fmt: skip
    """One decision about the child for each (event id, decided data), in that order."""
    child = linker.from_nhs_number(CHILD_NHS)
    records = _chain(
        [(AuditKind.DECIDED, {"event_id": eid, "party": "hub-a", "subject_keys": [child],
                              "data": d}) for eid, d in data],
        keys, "worker:w8", hours=13,
    )  # fmt: skip
    assert index_records(store, verifier, records, start=1300).breaks == []
    ids = [eid for eid, _ in data]
    return sorted(
        (e for e in disclosure_log(store, child) if e.event_id in ids),
        key=lambda e: ids.index(e.event_id),
    )


def test_a_share_that_needed_no_consent_reads_missing_not_needed_and_one_that_did_not(
    store: AuditStore, indexed: list[AuditRecord], verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    lines = _decided(
        store, verifier, linker, keys,
        ("n1", decision("shared", consent_rule="not_required")),
        ("n2", decision("not_shared", consent_rule="required")),
        ("n3", decision("shared_override", consent_rule="required_unless_safeguarding")),
        ("n4", decision("shared", consent_rule="required", consent="given")),
        ("n5", decision("shared")),  # decided before the rule was recorded
        ("n6", decision("shared", consent_rule="not_required", consent="given")),
        ("n7", decision("shared", consent_rule="required_unless_safeguarding", consent="given")),
    )  # fmt: skip
    assert [e.shown_consent for e in lines] == [
        NOT_NEEDED, "missing", OVERRIDDEN, "given", "missing",
        NOT_NEEDED.replace("missing", "given"), "given",
    ]  # fmt: skip
    for fmt in ("table", "html"):
        shown = disclosure(lines[:1], fmt, width=400)
        assert NOT_NEEDED in shown, fmt


def test_the_answer_explains_once_each_consent_state_it_shows(
    store: AuditStore, indexed: list[AuditRecord], verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    lines = _decided(
        store, verifier, linker, keys,
        ("n1", decision("shared", consent_rule="not_required")),
        ("n2", decision("not_shared", consent_rule="required")),
    )  # fmt: skip
    table = disclosure(lines, "table", width=4000)
    for state in ("missing", "not needed"):
        assert table.count(f'Consent "{state}": {CONSENT_STATE_MEANINGS[state]}') == 1, state
    assert 'Consent "given"' not in table
    assert disclosure(lines, "html").count(CONSENT_STATE_MEANINGS["not needed"]) == 1


def test_json_and_csv_keep_the_state_and_add_the_consent_rule(
    store: AuditStore, indexed: list[AuditRecord], verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    lines = _decided(
        store, verifier, linker, keys, ("n1", decision("shared", consent_rule="not_required"))
    )
    [row] = json.loads(disclosure(lines, "json"))
    assert (row["consent"], row["consent_rule"]) == ("missing", "not_required")
    [line] = csv.DictReader(io.StringIO(disclosure(lines, "csv")))
    assert (line["consent"], line["consent_rule"]) == ("missing", "not_required")


def test_an_override_against_a_refusal_says_overridden_never_not_needed(
    store: AuditStore, indexed: list[AuditRecord], verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    """Under required_unless_safeguarding consent is needed; an override works even against a
    refusal (docs/policy-language.md §6 step 5), which "not needed" would hide."""
    rule = "required_unless_safeguarding"
    lines = _decided(
        store, verifier, linker, keys,
        *((f"o{n}", decision("shared_override", consent_rule=rule, consent=state))
          for n, state in enumerate(("refused", "withdrawn", "missing"))),
    )  # fmt: skip
    assert [e.shown_consent for e in lines] == [
        f"{state} ({OVERRIDE_NOTE})" for state in ("refused", "withdrawn", "missing")
    ]
    for fmt in ("table", "html"):
        shown = disclosure(lines, fmt, width=4000)
        assert "not needed" not in shown, fmt
        assert f"refused ({OVERRIDE_NOTE})" in shown, fmt
    table = disclosure(lines, "table", width=4000)
    assert table.count(f'Consent "overridden": {CONSENT_STATE_MEANINGS["overridden"]}') == 1
    assert "even against a refusal" in CONSENT_STATE_MEANINGS["overridden"]
    assert "withdrawing consent would not have stopped it" in CONSENT_STATE_MEANINGS["not needed"]


def test_the_consent_meanings_speak_of_children_whose_consent_alone_is_looked_up() -> None:
    for state in ("refused", "withdrawn", "missing"):
        assert "child the information was about" in CONSENT_STATE_MEANINGS[state], state
        assert "a person" not in CONSENT_STATE_MEANINGS[state], state


@pytest.mark.parametrize("basis_first", [True, False])
def test_not_needed_is_said_only_when_every_ground_needed_no_consent(
    store: AuditStore, indexed: list[AuditRecord], verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore, tmp_path: Path, basis_first: bool,
) -> None:  # fmt: skip
    """A share under a clause needing no consent and one needing it (either first) is not
    "given (not needed)": withdrawing would stop what the second shared. One ground: said."""
    basis = dict(copy.deepcopy(ENCOMPASS), id="a_basis", to=["coord"],
                 share=["subject.name", "event.reference"])  # fmt: skip
    needs = dict(copy.deepcopy(ENCOMPASS), id="b_consent", to=["coord"], consent="required",
                 share=["event.summary", "event.child_voice"])  # fmt: skip
    order = [basis, needs] if basis_first else [needs, basis]
    policy = load(tmp_path / "p", agreements=[agreement("ag", order)])
    ev = event()
    data = []
    for n, state in enumerate(("given", "withdrawn")):
        cons = [consent(state=state, purposes=["safeguarding"], recipients=["coord"])]
        d = by_recipient(policy.decide(ev, cons, at=AT))["coord"]
        data.append((f"m{n}", d.model_dump(mode="json", exclude={"event_id", "recipient"})))
    both, basis_only = _decided(store, verifier, linker, keys, *data)
    assert len(both.grounds) == 2
    assert both.shown_consent == "given"
    assert basis_only.shown_consent == NOT_NEEDED.replace("missing", "withdrawn")
