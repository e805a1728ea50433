"""`accord audit …` mistakes: one line on stderr, a non-zero exit, nothing personal echoed."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.cli import main

SUBJECT = ["audit", "subject", "--reason", "subject_access_request", "--as", "ig.jo"]
REPORT = ["audit", "report", "--reason", "oversight", "--as", "ig.jo"]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from broker.keys import FileKeyStore

    FileKeyStore(tmp_path / "keys", create=True).set_linkage_key()
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    monkeypatch.delenv("ACCORD_AUDIT_DB", raising=False)
    return tmp_path


REVIEW = ["audit", "review-override", "e1", "--recipient", "coord"]
NAMED = ["--given-name", "Amy", "--family-name", "Smith"]


@pytest.mark.parametrize(
    ("argv", "code", "needle"),
    [
        ([*SUBJECT, "--nhs-number", "12345"], 2, "10 digits"),
        ([*SUBJECT, "--nhs-number", "9997017464"], 2, "check digit"),
        ([*SUBJECT, "--nhs-number", "9997017463", "--format", "pdf"], 2, "--format"),
        (["audit", "subject", "--nhs-number", "9997017463", "--as", "ig"], 2, "--reason"),
        (["audit", "subject", "--nhs-number", "9997017463", "--reason", "complaint"], 2, "--as"),
        ([*SUBJECT, "--nhs-number", "9997017463", "--reason", "curiosity"], 2, "--reason"),
        # A child without an NHS number is named by name and date of birth: one or the other.
        ([*SUBJECT, "--nhs-number", "9997017463", "--given-name", "Amy"], 2, "not both"),
        ([*SUBJECT, "--nhs-number", "9997017463", "--dob", "2016-03-04"], 2, "not both"),
        (SUBJECT, 2, "give --nhs-number, or --given-name, --family-name and --dob"),
        ([*SUBJECT, "--given-name", "Amy", "--dob", "2016-03-04"], 2, "needs --family-name"),
        ([*SUBJECT, *NAMED, "--dob", "2016-02-30"], 2, "--dob: not a real date"),
        ([*SUBJECT, *NAMED, "--dob", "04/03/2016"], 2, "--dob: must be an ISO 8601 date"),
        ([*SUBJECT, "--given-name", "?", "--family-name", "Smith", "--dob", "2016-03-04"], 2,
         "--given-name: needs at least one letter"),
        ([*SUBJECT, *NAMED, "--dob", "2016-03-04", "--postcode", "Amy"], 2, "--postcode"),
        (["audit", "verify", "--db", "mysql://db/audit"], 2, "unsupported database"),
        ([*REPORT, "--since", "yesterday"], 2, "--since"),
        ([*REPORT, "--since", "2026-11-23", "--until", "2026-11-22"], 2, "before"),
        ([*REPORT, "--policies", "/nonexistent/bundle"], 1, ""),
        (["audit", "report", "--as", "ig"], 2, "--reason"),
        ([*REVIEW, "--as", "ig", "--finding", "fine"], 2, "--finding"),
        ([*REVIEW, "--as", "ig"], 2, "--finding"),
        ([*REVIEW, "--as", "ig", "--finding", "justified", "--reference", "Amy at risk"], 2,
         "--reference"),
        # A name written as an identifier carries no case number: refused, and not echoed.
        ([*REVIEW, "--as", "ig", "--finding", "justified", "--reference", "Amy-Smith"], 2,
         "carries its case number, e.g. IG-2026-0142"),
        ([*REVIEW, "--as", "ig", "--finding", "justified", "--note", "Amy at risk"], 2, "--note"),
        ([*REVIEW, "--by", "ig", "--finding", "justified"], 2, "--by"),
        (["audit", "index", "--db", "postgresql://ig:s3cret@127.0.0.1:1/audit"], 1,
         "postgresql://127.0.0.1:1/audit"),
        (["audit", "index", "--db", "postgresql://127.0.0.1:1/audit?password=s3cret"], 1,
         "postgresql://127.0.0.1:1/audit"),
    ],
)  # fmt: skip
def test_a_mistake_is_one_line_on_stderr_and_a_non_zero_exit(
    argv: list[str], code: int, needle: str, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("accord: error:")
    assert needle in lines[0]
    assert "Traceback" not in captured.err + captured.out
    for secret in ("s3cret", "9997017463", "9997017464", "Amy", "Smith", "2016-0", "04/03"):
        assert secret not in captured.err + captured.out


def test_verify_without_a_keystore_says_how_to_make_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", "verify"])
    assert exit_info.value.code == 1
    assert "accord keys init" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["audit", "verify"],
        [*SUBJECT, "--nhs-number", "9997017463"],
        REPORT,
    ],
)
def test_reading_an_index_that_is_not_there_is_an_error_not_an_empty_answer(
    argv: list[str], home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mistyped --db must never say 'intact' or 'nothing recorded' (and makes no file)."""
    missing = home / "typo" / "audit.db"
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--db", f"sqlite:///{missing}"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"accord: error: no audit index at {missing}; run 'accord audit index' first"]
    assert not missing.parent.exists()


def test_a_file_that_is_not_an_index_is_one_line(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = home / "junk.db"
    junk.write_bytes(b"this is not an SQLite database, at all" * 10)
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", "verify", "--db", f"sqlite:///{junk}"])
    assert exit_info.value.code == 1
    # Beside the error, only log lines (JSON): the file tightened to its owner, as an index is.
    lines = capsys.readouterr().err.strip().splitlines()
    err = [line for line in lines if not line.startswith("{")]
    assert len(err) == 1
    assert err[0].startswith(f"accord: error: cannot open the audit index at {junk}")


def test_saved_heads_that_are_not_text_are_one_line(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    heads = home / "heads.jsonl"
    heads.write_bytes(b"\xff\xfe not UTF-8")
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", "verify", "--from-topic", "--heads", str(heads)])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.err == f"accord: error: {heads}: cannot be read as saved heads (UTF-8 text)\n"


def test_the_indexer_logs_json_lines_at_info_as_the_worker_does(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``audit index --follow`` is a service: structlog's default (debug, console rendering,
    tracebacks with their locals) must not be what its log collector reads."""
    import broker.cli._logging as logging_module

    calls: list[tuple[str, bool]] = []
    monkeypatch.setattr(
        logging_module, "configure_logging",
        lambda level="info", *, library_logs=True: calls.append((level, library_logs)),
    )  # fmt: skip
    with pytest.raises(SystemExit):
        main(["audit", "index", "--follow", "--db", "nosuch://x"])  # stops at the --db
    assert calls == [("info", True)]


def _db_help(capsys: pytest.CaptureFixture[str], command: str) -> str:
    """The --db option's help of ``accord audit COMMAND --help``, unwrapped."""
    code: int | str | None = 0
    try:
        main(["audit", command, "--help"])
    except SystemExit as exc:
        code = exc.code
    assert code in (0, None)
    words = " ".join(capsys.readouterr().out.replace("│", " ").split())
    return words[words.index("--db") : words.index("--", words.index("--db") + 4)]


@pytest.mark.parametrize(
    ("command", "says", "not_said"),
    [
        ("verify", "a copy) is opened read-only", "review-override"),
        ("subject", "a copy) is opened read-only", "review-override"),
        ("report", "a copy) is opened read-only", "review-override"),
        ("index", "The index to fill", "read-only"),
        ("review-override", "a copy is refused", "read-only"),
    ],
)
def test_each_commands_db_help_says_what_db_means_to_it(
    capsys: pytest.CaptureFixture[str], command: str, says: str, not_said: str
) -> None:
    """One help text was shared: verify's named review-override, and index's said copies
    are read-only (it fills whatever index it is given)."""
    shown = _db_help(capsys, command)
    assert says in shown
    assert not_said not in shown
