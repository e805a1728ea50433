"""A SAR answer in ``table``, ``csv`` or ``json`` says on stderr, in one line outside the
data, what the ``html`` page's header says: from an index whose last verification failed; and
it exits 1 then, stdout still the document. (Made from a copy: tests/unit/audit/
test_evidence_copy.py; a chain the indexer found broken: test_sar_complete.py.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from broker.audit import AuditRecord
from broker.governance import AuditStore, VerifyRun
from tests.unit.audit.conftest import CHILD_NHS, Run

_FORMATS = pytest.mark.parametrize("fmt", ["table", "csv", "json"])


def is_the_document(fmt: str, out: str) -> None:
    """stdout is still the answer, its shape unchanged."""
    assert "e1" in out
    if fmt == "json":
        assert isinstance(json.loads(out), list)


@_FORMATS
def test_an_answer_from_an_index_whose_last_verification_failed_warns_and_exits_1(
    fmt: str, store: AuditStore, indexed: list[AuditRecord], audit_db_url: str,
    run_cli: Run, lookups: list[dict[str, Any]],
) -> None:  # fmt: skip
    failed = VerifyRun(datetime.now(UTC), "ig.jo", "cli", ok=False, chain="worker:w1", seq=2,
                       problem="hash mismatch")  # fmt: skip
    store.keep_verification(failed)
    code, out, err = run_cli(["audit", "subject", "--nhs-number", CHILD_NHS, "--db",
                              audit_db_url, "--format", fmt, "--reason", "complaint",
                              "--as", "ig.jo"])  # fmt: skip
    assert code == 1
    is_the_document(fmt, out)
    [line] = err.splitlines()
    assert line.startswith("accord: warning: the audit log did not verify: the index records ")
    assert "FAILED" in line


def test_an_answer_from_a_verified_index_says_nothing_and_exits_0(
    store: AuditStore, indexed: list[AuditRecord], audit_db_url: str, run_cli: Run,
    lookups: list[dict[str, Any]],
) -> None:  # fmt: skip
    store.keep_verification(VerifyRun(datetime.now(UTC), "ig.jo", "cli", ok=True,
                                      records=len(indexed), chains=1))  # fmt: skip
    code, _, err = run_cli(["audit", "subject", "--nhs-number", CHILD_NHS, "--db",
                            audit_db_url, "--format", "json", "--reason", "complaint",
                            "--as", "ig.jo"])  # fmt: skip
    assert (code, err) == (0, "")
