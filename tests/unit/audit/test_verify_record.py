"""What ``accord audit verify`` says about itself: the index it names in its record (never a
password), whether a copy's run is recorded, and its summary line."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from pydantic import SecretStr

from broker.audit import AuditKind, AuditRecord
from broker.cli._audit_verify import _index_named
from broker.governance import AuditStore, VerifySummary
from broker.governance._verify_vouch import Vouch
from tests.unit.audit.conftest import Run
from tests.unit.audit.test_verify_vouch import SigningSink, sink, two_chains  # noqa: F401


@pytest.fixture(autouse=True)
def _no_pg_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """libpq fills a parameter a URL leaves out from PG*: the developer's own would change
    which of these URLs are the configured index."""
    for name in [n for n in os.environ if n.startswith("PG")]:
        monkeypatch.delenv(name)


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
        ("postgresql://ig:p%40ss#?x@db/accord?sslmode=require&password=p", "postgresql://db/accord"),
        ("postgresql://ig:s3cret@db1:5432,db2:5433/accord?target_session_attrs=read-write",
         "postgresql://db1:5432,db2:5433/accord"),
        ("postgresql://accord@db:5432/audit?sslmode=require&password=s3cr@tPass",
         "postgresql://db:5432/audit"),
        ("postgresql://accord@db/audit?password=a@b#c?d&host=db2", "postgresql://db2/audit"),
        ("postgres://ig:s3cr@t@db/accord", "(an index URL that cannot be parsed)"),
        ("postgres://ig:s3cret@DB.internal:5433/accord", "postgresql://DB.internal:5433/accord"),
        ("postgresql://ig:s3cret@/accord?host=/run/postgresql&user=ig",
         "postgresql:///accord?host=/run/postgresql"),
        ("postgresql://ig:s3cret@db/accord?service=audit&hostaddr=10.0.0.7&application_name=x",
         "postgresql://db/accord?service=audit&hostaddr=10.0.0.7"),
        ("postgresql://ig:s3cret@db/accord?nonsense=s3cret",
         "(an index URL that cannot be parsed)"),
        # A '[' left open: the query inside libpq's host; hostaddr= lets it connect.
        ("postgresql://ig@[db.internal/accord?password=s3cret]?hostaddr=10.0.0.7",
         "(an index URL that cannot be parsed)"),
    ],
)  # fmt: skip
def test_the_index_a_run_names_carries_no_password_whatever_it_holds(url: str, named: str) -> None:
    """Read as libpq reads it: ``#``, ``?`` and ``@`` in a password, in the userinfo or in
    the query, do not end or move the host part (they did with urlsplit and with the last
    '@'); only hosts, ports, database, service and host address are kept; a URL libpq
    cannot read names nothing of itself. The configured index's very text is the configured
    index, even where it cannot be read: libpq, reading it twice in one process, reaches one
    place."""
    assert _named(None, url) == {"index": named, "index_role": "copy"}
    for secret in ("s3cr", "tPass", "ig"):
        assert secret not in named
    assert _named(url, url)["index_role"] == "configured"
    unreadable = named.startswith("(")
    written_otherwise = url.replace("postgresql:", "postgres:", 1)
    if written_otherwise == url:
        written_otherwise = url.replace("postgres:", "postgresql:", 1)
    assert _named(url, written_otherwise)["index_role"] == ("copy" if unreadable else "configured")


@pytest.mark.parametrize(
    ("configured", "db", "role"),
    [
        ("postgresql://db/audit", "postgresql://db/audit?port=5433&dbname=evidence", "copy"),
        ("postgresql://db/audit", "postgresql://db/audit?dbname=evidence", "copy"),
        ("postgresql://db/audit", "postgresql://db:5433/audit", "copy"),
        ("postgresql://db/audit", "postgresql://db2/audit", "copy"),
        ("postgresql://db/audit", "postgresql://db/audit?host=db2", "copy"),
        ("postgresql://ig:x@db/audit", "postgres://ig:y@DB:5432/audit?sslmode=require",
         "configured"),
        ("postgresql://db1,db2:5433/audit", "postgresql://DB1:5432,db2:5433/audit", "configured"),
        ("postgresql://db1,db2/audit", "postgresql://db2,db1/audit", "copy"),  # tried in order
        ("postgresql://:pw@db/audit", "postgresql://:pw@db/audit", "configured"),
        ("host=db dbname=audit password=pw", "host=db dbname=audit password=pw", "configured"),
        ("postgresql://ig@db", "postgresql://ig@db/ig", "configured"),
        ("postgresql://db/audit", "postgresql://db/audit?options=-csearch_path%3Devidence",
         "copy"),
        ("postgresql://ig@db/audit", "postgresql://evidence@db/audit", "copy"),
        ("postgresql://db/audit", "postgresql://db/audit?nonsense=1", "copy"),
        ("postgresql://db/audit", "sqlite:////h/audit.db", "copy"),
        (None, "sqlite:////h/./audit.db", "configured"),
        (None, "postgresql://db/audit", "copy"),
    ],
)  # fmt: skip
def test_whether_db_is_the_configured_index_is_what_the_database_reads_not_how_it_is_written(
    configured: str | None, db: str, role: str
) -> None:
    """A copy named by query parameters is not taken for the configured index (it vouched,
    and went on from the copy's head), nor the configured index, written with
    ``postgres://``, capitals or its default port, for a copy."""
    path = db.removeprefix("sqlite://") if db.startswith("sqlite:") else None
    store = SimpleNamespace(path=Path(path)) if path else object()
    settings = SimpleNamespace(
        audit=SimpleNamespace(db=SecretStr(configured) if configured else None), home=Path("/h")
    )
    named = _index_named(cast("Any", settings), db, cast("AuditStore", store))
    assert named["index_role"] == role


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


def test_a_db_run_with_no_index_configured_is_not_recorded_and_says_to_set_accord_audit_db(
    store: AuditStore, two_chains: list[AuditRecord], sink: SigningSink,  # noqa: F811
    audit_db_url: str, run_cli: Run, monkeypatch: pytest.MonkeyPatch, audit_home: Path,
) -> None:  # fmt: skip
    """ACCORD_AUDIT_DB unset: the configured index is <home>/audit.db, so any other --db is
    a copy, and (that file not here) its run is not recorded: the warning says how to have
    the live index's run recorded."""
    monkeypatch.delenv("ACCORD_AUDIT_DB")
    assert not (audit_home / "audit.db").exists()
    code, out, err = run_cli(["audit", "verify", "--db", audit_db_url])
    assert code == 0
    assert out.startswith("audit log intact")
    assert err.count("\n") == 1
    assert "set ACCORD_AUDIT_DB to its URL so this run is recorded and vouches" in err
    assert sink.records == []


def test_the_summary_keeps_every_clause_with_messages_left_out() -> None:
    line = VerifySummary("index", 3, 9, 3, refused=1, unsigned=2, not_reached=1,
                         not_vouched=2).line()  # fmt: skip
    assert "; 2 chains are not yet vouched for by a signed verification" in line
    assert "; 1 chain an earlier verification saw further than this index has read" in line
    assert "; left out: 1 message no writer signed, 2 records awaiting" in line
    line = VerifySummary("topic", 3, 9, 3, refused=1, behind=4).line()
    assert "(4 chains signed further than that: not indexed yet)" in line
    assert "; left out: 1 message no writer signed" in line
    line = VerifySummary("index", 3, 9, 3, not_vouched=1, beyond_vouch=2).line()
    assert "; 3 chains are not yet vouched for by a signed verification" in line
    assert "(1 that no verification vouches for, 2 with records past the newest head" in line
    # The plain verdict first, and no word that reads as loss, nor a chain in the index said
    # to be removed from it.
    assert line.index("Every chain in the index verifies as far as it goes") < line.index(
        "; 3 chains are not"
    )
    assert "nothing is missing" not in line
    for loss in ("deleted whole", "cut back", "as a whole"):
        assert loss not in line
    assert "so records removed from their end, or a whole chain, would not show yet" in line
    assert "run 'accord audit verify --from-topic' (and --db) to check them against Kafka" in line


def test_the_summary_says_one_of_each_in_the_singular() -> None:
    """It used to say '1 records in 1 chains'."""
    line = VerifySummary("index", 1, 1, 1, unvouched=1, behind=1, not_vouched=1).line()
    assert line.startswith("audit log intact (index): 1 record in 1 chain, 1 with a verified")
    assert (
        "; 1 chain is not yet vouched for by a signed verification, so records removed "
        "from its end, or a whole chain, would not show yet" in line
    )
    assert "to check it against Kafka" in line
    assert "(1 chain signed further than that: not indexed yet)" in line
    assert "; 1 checkpoint vouches for nothing (its key does not verify now" in line
    assert line.endswith("a later valid checkpoint covers it")
    line = VerifySummary("topic", 2, 5, 2, unvouched=2).line()
    assert line.startswith("audit log intact (topic): 5 records in 2 chains, 2 with")
    assert line.endswith("; 2 checkpoints vouch for nothing (their key does not verify now, "
                         "revoked since?), a later valid checkpoint covers them")  # fmt: skip


def test_nothing_is_missing_only_where_a_verification_vouches_for_every_chain() -> None:
    """A run from an index every chain of which a signed verification vouches for in full
    says so, with no caveat; one with a chain no signed checkpoint is kept for does not."""
    line = VerifySummary("index", 2, 9, 2, not_vouched=0).line()
    assert line == (
        "audit log intact (index): 9 records in 2 chains, 2 with a verified signed checkpoint. "
        "Every chain in the index verifies, and a signed verification vouches for each: "
        "nothing is missing or altered"
    )
    line = VerifySummary("index", 2, 9, 1, not_vouched=0).line()
    assert "nothing is missing" not in line
    assert "; 1 chain has no signed checkpoint kept apart in the index: run" in line
    # From the topic: no verification's vouch is read, and none is claimed.
    assert "nothing is missing" not in VerifySummary("topic", 2, 9, 2).line()


_V = Vouch(
    5, "0" * 64, (1, 7), "console:ig-desk.cli", 17, datetime(2026, 12, 8, 1, 2, 3, tzinfo=UTC)
)


def test_a_working_index_says_when_a_signed_verification_last_vouched_and_what_since() -> None:
    """The command line's own chain always holds the last run's records, which no run vouches
    for: said as what it is (when the newest vouching run was, how many records in which
    chains are newer, checked in the index only), not as chains no verification vouches for."""
    line = VerifySummary("index", 3, 40, 3, not_vouched=0, beyond_vouch=1,
                         past_vouch={"console:ig-desk.cli": 2}, newest_vouch=_V).line()  # fmt: skip
    assert line == (
        "audit log intact (index): 40 records in 3 chains, 3 with a verified signed checkpoint. "
        "Every chain in the index verifies; signed verifications vouch for 38 of its records, "
        "the newest at 2026-12-08 01:02:03 UTC (console:ig-desk.cli seq 17); 2 records in 1 "
        "chain (console:ig-desk.cli) are newer than what they vouch for, checked in the index "
        "only: removed from the end of its chain, or with a whole chain, they would not show "
        "yet: run 'accord audit verify --from-topic' (and --db) to check them against Kafka"
    )
    line = VerifySummary("index", 9, 40, 9, not_vouched=1, beyond_vouch=1,
                         past_vouch={"worker:w1": 1}, newest_vouch=_V).line()  # fmt: skip
    assert "; 1 record in 1 chain (worker:w1) is newer than what they vouch for" in line
    assert "removed from the end of its chain, or with a whole chain, it would not" in line
    assert line.endswith("to check it against Kafka")
    # Many chains: counted, not listed.
    past = {f"worker:w{n}": 2 for n in range(4)}
    line = VerifySummary("index", 9, 40, 9, not_vouched=4, past_vouch=past,
                         newest_vouch=_V).line()  # fmt: skip
    assert "; 8 records in 4 chains are newer than what they vouch for" in line
    assert "removed from the end of their chains" in line
    # With no vouch held, as before: the chains no verification vouches for.
    line = VerifySummary("index", 3, 40, 3, not_vouched=3, past_vouch=past).line()
    assert "; 3 chains are not yet vouched for by a signed verification" in line


def test_an_empty_index_is_never_said_to_miss_nothing() -> None:
    """An index emptied of every row looks like a new one: nothing in it vouches for what it
    should hold, so no 'nothing is missing'."""
    line = VerifySummary("index", 0, 0, 0, not_vouched=0).line()
    assert "nothing is missing" not in line
    assert line == (
        "audit log intact (index): 0 records in 0 chains, 0 with a verified signed checkpoint. "
        "The index holds no chain, so nothing in it shows what it should hold: run 'accord "
        "audit verify --from-topic' (and --db) to check it against Kafka"
    )


_SQLITE = pytest.mark.parametrize("audit_db_url", ["sqlite"], indirect=True)


def _q(store: AuditStore, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    return store._q(sql, params)  # type: ignore[attr-defined,no-any-return]  # raw SQL, as an attacker would


@_SQLITE
@pytest.mark.parametrize("reference", ["moved back", "deleted"])
def test_a_tail_cut_from_a_chain_no_verification_vouches_for_is_not_said_to_be_complete(
    store: AuditStore, indexed: list[AuditRecord], audit_db_url: str, run_cli: Run,
    reference: str,
) -> None:  # fmt: skip
    """Everything after the second newest checkpoint deleted, with its subject links, the
    indexed head and the checkpoint reference moved back to it (or the reference deleted):
    the index verifies, and no verification vouches for the chain yet, so the line must not
    say nothing is missing; it says what would not show and how to check it."""
    chain = indexed[0].chain
    cps = [r for r in indexed if r.kind is AuditKind.CHECKPOINT]
    assert len(cps) >= 2
    keep = cps[-2]
    _q(store, "DELETE FROM audit_records WHERE chain = ? AND seq > ?", (chain, keep.seq))
    _q(store, "DELETE FROM audit_subjects WHERE chain = ? AND seq > ?", (chain, keep.seq))
    _q(store, "UPDATE chain_heads SET seq = ?, hash = ? WHERE chain = ?",
       (keep.seq, keep.hash, chain))  # fmt: skip
    if reference == "deleted":
        _q(store, "DELETE FROM chain_checkpoints WHERE chain = ?", (chain,))
    else:
        _q(store, "UPDATE chain_checkpoints SET seq = ?, covers_seq = ?, body = ? WHERE chain = ?",
           (keep.seq, keep.data["covers_seq"], keep.to_bytes().decode(), chain))  # fmt: skip
    code, out, err = run_cli(["audit", "verify", "--db", audit_db_url])
    assert (code, err) == (0, "")  # the index alone cannot tell: hence the caveat
    assert out.startswith(f"audit log intact ({store.backend}): {keep.seq + 1} records in 1 chain")
    assert "nothing is missing" not in out
    assert "as a whole" not in out
    assert (
        "Every chain in the index verifies as far as it goes; 1 chain is not yet vouched for "
        "by a signed verification, so records removed from its end, or a whole chain, would "
        "not show yet: run 'accord audit verify --from-topic' (and --db) to check it against "
        "Kafka"
    ) in out
