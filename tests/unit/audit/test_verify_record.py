"""What ``accord audit verify`` says about itself: the index it names in its record (never a
password), whether a copy's run is recorded, and its summary line."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from pydantic import SecretStr

from broker.audit import AuditRecord
from broker.cli._audit_verify import _index_named
from broker.governance import AuditStore, VerifySummary
from tests.unit.audit.conftest import Run
from tests.unit.audit.test_verify_vouch import SigningSink, sink, two_chains  # noqa: F401


def _named(configured: str | None, db: str | None) -> dict[str, str]:
    settings = SimpleNamespace(
        audit=SimpleNamespace(db=SecretStr(configured) if configured else None), home=Path("/h")
    )
    return _index_named(cast("Any", settings), db, cast("AuditStore", object()))


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("postgresql://ig:2024#Winter@db.internal/accord", "postgresql://db.internal/accord"),
        ("postgresql://ig:why?not@db.internal:5432/accord", "postgresql://db.internal:5432/accord"),
        ("postgresql://ig:p@ss#?x@db/accord?sslmode=require&password=p", "postgresql://db/accord"),
        ("postgresql://ig:s3cret@db1:5432,db2:5433/accord?target_session_attrs=read-write",
         "postgresql://db1:5432,db2:5433/accord"),
    ],
)  # fmt: skip
def test_the_index_a_run_names_carries_no_password_whatever_it_holds(url: str, named: str) -> None:
    """``#`` and ``?`` in a password do not end the host part (they did with urlsplit)."""
    assert _named(None, url) == {"index": named, "index_role": "copy"}
    assert _named(url, url)["index_role"] == "configured"


def test_a_copys_run_is_not_recorded_where_the_configured_index_cannot_be_opened(
    store: AuditStore, two_chains: list[AuditRecord], sink: SigningSink,  # noqa: F811
    audit_db_url: str, run_cli: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:  # fmt: skip
    """The command line's chain would go on from the copy's head, and could fork."""
    monkeypatch.setenv("ACCORD_AUDIT_DB", f"sqlite:///{tmp_path / 'not-here.db'}")
    code, out, err = run_cli(["audit", "verify", "--db", audit_db_url])
    assert code == 0
    assert out.startswith("audit log intact")
    assert err.count("\n") == 1
    assert err.startswith("accord: warning: this verification is not recorded in the audit log:")
    assert "configured index" in err
    assert sink.records == []


def test_the_summary_keeps_every_clause_with_messages_left_out() -> None:
    line = VerifySummary("index", 3, 9, 3, refused=1, unsigned=2, not_reached=1,
                         not_vouched=2).line()  # fmt: skip
    assert "; 2 chains no earlier signed verification vouches for yet" in line
    assert "; 1 chains an earlier verification saw further than this index has read" in line
    assert "; left out: 1 messages no writer signed, 2 records awaiting" in line
    line = VerifySummary("topic", 3, 9, 3, refused=1, behind=4).line()
    assert "(4 chains signed further than that: not indexed yet)" in line
    assert "; left out: 1 messages" in line
