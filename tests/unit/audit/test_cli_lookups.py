"""What `accord audit subject|report|review-override` record, and how they learn who and why.

The look-up names every child whose data the command prints, and is written before anything
is printed; --as and --reason left out are asked for at a terminal, and are one line
otherwise. Kafka and the password are faked here (tests/e2e has them real).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from broker.audit import AuditKind, AuditRecord, ChainWriter, KeystoreAuditSigner
from broker.cli._app import build_app
from broker.errors import TransportError, UsageError
from broker.keys import FileKeyStore
from broker.linkage import Linker
from broker.principals import Principal
from tests.unit.audit.conftest import CHILD_NHS, PARENT_NHS, T0, Run

SUBJECT = ["audit", "subject", "--nhs-number", CHILD_NHS]
REPORT = ["audit", "report", "--format", "json"]


def test_the_report_records_the_child_of_each_override_it_shows(
    indexed: list[AuditRecord], audit_db_url: str, run_cli: Run,
    lookups: list[dict[str, Any]], linker: Linker,
) -> None:  # fmt: skip
    code, out, err = run_cli([*REPORT, "--db", audit_db_url, "--reason", "oversight",
                              "--as", "ig.jo"])  # fmt: skip
    assert (code, err) == (0, "")
    assert [p["event_id"] for p in json.loads(out)["pending_overrides"]] == ["e2"]
    [lookup] = lookups
    assert (lookup["page"], lookup["officer"]) == ("cli.report", "ig.jo")
    # e2's override is about the child alone; the parent is in the window's counts only.
    assert lookup["subject_keys"] == (linker.from_nhs_number(CHILD_NHS),)
    assert linker.from_nhs_number(PARENT_NHS) not in lookup["subject_keys"]


def test_a_report_for_a_security_incident_records_that_reason(
    indexed: list[AuditRecord], audit_db_url: str, run_cli: Run,
    lookups: list[dict[str, Any]],
) -> None:  # fmt: skip
    # As `audit quarantine --open --purpose security_incident`: after a stolen key, the
    # report of what its holder got accepted is looked at for the incident.
    code, _, err = run_cli([*REPORT, "--db", audit_db_url, "--reason", "security_incident",
                            "--as", "ig.jo"])  # fmt: skip
    assert (code, err) == (0, "")
    assert [lk["detail"] for lk in lookups] == [{"purpose": "security_incident"}]


def test_a_report_showing_no_child_records_no_subject(
    audit_home: Path, audit_db_url: str, run_cli: Run, lookups: list[dict[str, Any]],
) -> None:  # fmt: skip
    from broker.governance import open_store

    open_store(audit_db_url, home=audit_home, create=True).close()
    code, _, err = run_cli([*REPORT, "--db", audit_db_url, "--reason", "oversight",
                            "--as", "ig.jo"])  # fmt: skip
    assert (code, err) == (0, "")
    assert [lk["subject_keys"] for lk in lookups] == [()]


class _Down:
    """An appender whose Kafka is gone: nothing can be recorded."""

    async def append(self, _build: object) -> list[AuditRecord]:
        raise TransportError("connecting to Kafka at 127.0.0.1:9: connection refused")

    async def close(self) -> None:
        pass


@pytest.mark.parametrize("argv", [SUBJECT, REPORT], ids=["subject", "report"])
def test_nothing_is_printed_when_the_look_up_cannot_be_recorded(
    argv: list[str], indexed: list[AuditRecord], audit_db_url: str, run_cli: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    import broker.cli._audit

    monkeypatch.setattr(broker.cli._audit, "sign_in", lambda _s, name, **_kw: name)
    monkeypatch.setattr(broker.cli._audit, "_index_once", lambda *_a: None)
    monkeypatch.setattr(broker.cli._audit, "_appender", lambda *_a: _Down())
    code, out, err = run_cli([*argv, "--db", audit_db_url, "--reason", "complaint",
                              "--as", "ig.jo"])  # fmt: skip
    assert (code, out) == (1, "")
    assert err == (
        "accord: error: the look-up could not be recorded in the audit log, so nothing is "
        "shown: connecting to Kafka at 127.0.0.1:9: connection refused\n"
    )


# -- who and why, asked for at a terminal ----------------------------------------------------


@pytest.fixture
def at_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import broker.cli._officer

    monkeypatch.setattr(broker.cli._officer, "terminal", lambda: True)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_the_briefs_subject_command_asks_who_and_why_at_a_terminal(
    at_a_terminal: None, indexed: list[AuditRecord], audit_db_url: str, runner: CliRunner,
    lookups: list[dict[str, Any]], linker: Linker,
) -> None:  # fmt: skip
    """`accord audit subject --nhs-number N`, exactly as the brief gives it."""
    result = runner.invoke(
        build_app(), [*SUBJECT, "--db", audit_db_url, "--format", "json"], input="3\nig.jo\n"
    )
    assert result.exit_code == 0, result.output
    assert "1. subject_access_request" in result.stderr
    assert "5. care_proceedings" in result.stderr
    assert "Your console account" in result.stderr
    [lookup] = lookups
    assert (lookup["officer"], lookup["detail"]["purpose"]) == ("ig.jo", "complaint")
    assert lookup["subject_keys"] == (linker.from_nhs_number(CHILD_NHS),)
    # The runner echoes what was typed to stdout, where a terminal would show it.
    printed = result.stdout[result.stdout.index("[") :]
    assert [e["kind"] for e in json.loads(printed)] == [
        "decision", "decision", "delivered", "decision", "delivered", "opened"
    ]  # fmt: skip


def test_a_reason_not_among_the_choices_is_refused_and_asked_again_never_echoed(
    at_a_terminal: None, indexed: list[AuditRecord], audit_db_url: str, runner: CliRunner,
    lookups: list[dict[str, Any]],
) -> None:  # fmt: skip
    result = runner.invoke(
        build_app(), [*REPORT, "--db", audit_db_url, "--as", "ig.jo"],
        input="Ruby Holland\n0\n9\naudit_sample\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stderr.count("Choose a number from 1 to 5.") == 3
    assert "Ruby" not in result.stderr
    assert [(lk["officer"], lk["detail"]["purpose"]) for lk in lookups] == [
        ("ig.jo", "audit_sample")
    ]
    assert "Your console account" not in result.stderr  # --as was given


def test_review_override_asks_for_the_account_at_a_terminal(
    at_a_terminal: None, indexed: list[AuditRecord], audit_db_url: str, runner: CliRunner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    import broker.cli._audit_review

    signed_in: list[str] = []

    def sign_in(_s: object, name: str, **_kw: object) -> str:
        signed_in.append(name)
        raise SystemExit(0)  # far enough: the rest writes to Kafka (tests/e2e)

    monkeypatch.setattr(broker.cli._audit_review, "sign_in", sign_in)
    argv = ["audit", "review-override", "e2", "--recipient", "school-1", "--finding", "justified"]
    result = runner.invoke(build_app(), [*argv, "--db", audit_db_url], input="ig.jo\n")
    assert result.exit_code == 0, result.output
    assert signed_in == ["ig.jo"]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        ([*SUBJECT, "--as", "ig.jo"], "missing --reason: give --reason R (R one of "
         "subject_access_request, override_review, complaint, audit_sample, care_proceedings)"),
        ([*SUBJECT, "--reason", "complaint"], "missing --as: give --as NAME"),
        (SUBJECT, "missing --reason and --as: give --reason R --as NAME (R one of "
         "subject_access_request, "),
        (REPORT, "missing --reason and --as: give --reason R --as NAME (R one of oversight, "
         "override_review, audit_sample, complaint, security_incident)"),
        (["audit", "review-override", "e2", "--recipient", "school-1", "--finding", "justified"],
         "missing --as: give --as NAME (your console account)"),
    ],
)  # fmt: skip
def test_without_a_terminal_a_missing_who_or_why_is_one_line(
    argv: list[str], says: str, indexed: list[AuditRecord], audit_db_url: str, run_cli: Run,
    lookups: list[dict[str, Any]],
) -> None:  # fmt: skip
    """Nothing is read unasked from a pipe, and typer's usage block is never printed."""
    code, out, err = run_cli([*argv, "--db", audit_db_url])
    assert (code, out) == (2, "")
    assert err.startswith(f"accord: error: {says}")
    assert len(err.splitlines()) == 1
    assert lookups == []


def test_with_password_stdin_who_and_why_are_never_asked(
    at_a_terminal: None, indexed: list[AuditRecord], audit_db_url: str, runner: CliRunner,
    lookups: list[dict[str, Any]],
) -> None:  # fmt: skip
    """Standard input is the password's: the first line is never taken for a reason."""
    result = runner.invoke(
        build_app(), [*SUBJECT, "--db", audit_db_url, "--password-stdin"], input="1\nig.jo\n"
    )
    assert isinstance(result.exception, UsageError)  # main() makes it one line, exit 2
    assert "missing --reason and --as" in str(result.exception)
    assert "Why are you looking" not in result.stderr
    assert lookups == []


# -- saved heads -----------------------------------------------------------------------------


def _heads(keys: FileKeyStore) -> tuple[AuditRecord, AuditRecord]:
    """An older and a newer signed checkpoint of one chain."""
    w = ChainWriter("worker:w1", clock=lambda: T0)
    signer = KeystoreAuditSigner(keys, Principal.WORKER)
    w.append(AuditKind.POLICY_LOADED, data={"version": "sha256:abc"})
    old = w.checkpoint(signer)
    w.append(AuditKind.QUARANTINED, party="wmp", data={"reason": "invalid-event"})
    return old, w.checkpoint(signer)


@pytest.mark.parametrize("order", ["new-then-old", "old-then-new"])
def test_saved_heads_joined_in_any_order_keep_each_chains_newest(
    order: str, keys: FileKeyStore, tmp_path: Path
) -> None:
    """`cat new.jsonl old.jsonl` must not let a topic cut back to the old head pass."""
    from broker.cli._audit_verify import _read_heads

    old, new = _heads(keys)
    lines = [new, old] if order == "new-then-old" else [old, new]
    path = tmp_path / "heads.jsonl"
    path.write_text("".join(f"{r.to_bytes().decode()}\n" for r in lines), encoding="utf-8")
    assert _read_heads(path)["worker:w1"].seq == new.seq > old.seq
