"""`accord policy impact`'s one-line refusals, before any key or Kafka is touched: a broken
bundle named by which of the two it is, and a --since that could only compare nothing."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

Run = Callable[[list[str]], tuple[int, str, str]]


@pytest.fixture
def broken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project bundle with one misspelt field path; a home with no keystore at all, so
    a run that went past the bundles would say so instead."""
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path / "home"))
    root = tmp_path / "broken"
    shutil.copytree(REPO / "policies", root, ignore=shutil.ignore_patterns("scenarios"))
    path = root / "agreements" / "sandwell-early-help.yaml"
    text = path.read_text()
    assert "event.child_present, event.location]" in text
    path.write_text(text.replace("event.child_present, event.location]",
                                 "event.child_presnt, event.location]", 1))  # fmt: skip
    return root


def test_a_broken_new_bundle_is_named_as_the_new_one_and_by_its_folder(
    run_cli: Run, broken: Path
) -> None:
    """Both bundles are loaded: 'agreements/x.yaml:83: …' alone does not say which."""
    code, out, err = run_cli(
        ["policy", "impact", "--policies", str(broken), "--current", str(REPO / "policies")]
    )
    assert code == 2  # a usage error, as policy test's; 1 is "nothing compared"
    assert out == ""
    [line] = err.strip().splitlines()
    assert line.startswith(f"accord: error: the new bundle ({broken}{os.sep}): agreements/")
    assert "'event.child_presnt'" in line


def test_a_broken_bundle_in_force_is_named_as_the_one_in_force(run_cli: Run, broken: Path) -> None:
    code, _, err = run_cli(
        ["policy", "impact", "--policies", str(REPO / "policies"), "--current", str(broken)]
    )
    assert code == 2
    [line] = err.strip().splitlines()
    assert line.startswith(f"accord: error: the bundle in force ({broken}{os.sep}): agreements/")


def test_since_in_the_future_is_refused_in_one_line_with_exit_2(run_cli: Run, broken: Path) -> None:
    """It would read no event, compare nothing, and once said 'no decision would change'.
    Refused before the bundles are even loaded (the broken one is not named)."""
    later = (datetime.now(UTC) + timedelta(days=400)).date().isoformat()
    code, out, err = run_cli(
        ["policy", "impact", "--policies", str(broken), "--current", str(REPO / "policies"),
         "--since", later]
    )  # fmt: skip
    assert code == 2
    assert out == ""
    assert err == f"accord: error: --since: {later} is in the future\n"


@pytest.fixture
def unbumped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project bundle with a clause of wolverhampton-mash (v4) and one of
    sandwell-early-help (v3) changed, neither version increased; a home with no keystore,
    so that a run that went on would stop there."""
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ACCORD_POLICIES", raising=False)
    root = tmp_path / "unbumped"
    shutil.copytree(REPO / "policies", root, ignore=shutil.ignore_patterns("scenarios"))
    for name, old, new in (
        ("wolverhampton-mash.yaml", "event.categories,\n            event.location]",
         "event.categories]"),
        ("sandwell-early-help.yaml", "event.child_present, event.location]",
         "event.child_present]"),
    ):  # fmt: skip
        path = root / "agreements" / name
        text = path.read_text()
        assert text.count(old) == 1, name
        path.write_text(text.replace(old, new))
    return root


def _impact(new: Path, *more: str, current: Path = REPO / "policies") -> list[str]:
    return ["policy", "impact", "--policies", str(new), "--current", str(current), *more]


def test_agreements_changed_without_a_new_version_are_warned_of_one_line_each(
    run_cli: Run, unbumped: Path
) -> None:
    """After rollout the log would cite 'v4' for two different texts: said before anything
    is read; the run goes on (here to the missing keystore)."""
    code, _, err = run_cli(_impact(unbumped))
    assert code != 0
    warned = [line for line in err.splitlines() if line.startswith("warning: agreement ")]
    assert [w.split(" changed ")[0] for w in warned] == [
        "warning: agreement sandwell-early-help", "warning: agreement wolverhampton-mash",
    ]  # fmt: skip
    assert "but is still version 3: decisions would cite v3 for two different texts" in warned[0]
    assert warned[1].startswith("warning: agreement wolverhampton-mash changed (clause ")
    assert "but is still version 4" in warned[1]
    assert "keystore" in err.splitlines()[-1]


def test_strict_refuses_them_in_one_line_before_reading_anything(
    run_cli: Run, unbumped: Path
) -> None:
    code, out, err = run_cli(_impact(unbumped, "--strict"))
    assert (code, out) == (1, "")
    assert err == (
        "accord: error: --strict: the new bundle changes sandwell-early-help v3, "
        "wolverhampton-mash v4 without increasing its version\n"
    )


def test_a_new_version_for_each_clears_the_warning(run_cli: Run, unbumped: Path) -> None:
    for name, version in (("wolverhampton-mash.yaml", 4), ("sandwell-early-help.yaml", 3)):
        path = unbumped / "agreements" / name
        path.write_text(path.read_text().replace(f"version: {version}\n",
                                                 f"version: {version + 1}\n", 1))  # fmt: skip
    code, _, err = run_cli(_impact(unbumped, "--strict"))
    assert code != 0
    assert "warning" not in err
    assert "--strict" not in err
    assert "keystore" in err


def test_a_current_bundle_other_than_the_workers_folder_is_warned_of_with_both_hashes(
    run_cli: Run, unbumped: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker loads ACCORD_POLICIES: an older --current compares the wrong difference."""
    from broker.policy import load_bundle

    monkeypatch.setenv("ACCORD_POLICIES", str(unbumped))
    old, worker = load_bundle(REPO / "policies").version, load_bundle(unbumped).version
    code, _, err = run_cli(_impact(REPO / "policies"))
    assert code != 0
    [line] = [x for x in err.splitlines() if x.startswith("warning: --current")]
    assert line == (
        f"warning: --current ({REPO / 'policies'}) is bundle {old}, but the worker loads "
        f"{unbumped} (ACCORD_POLICIES), bundle {worker}: the changes are counted against --current"
    )
    # The same bundle in another folder is the same baseline: nothing to say.
    copy = tmp_path / "copy"
    shutil.copytree(unbumped, copy)
    code, _, err = run_cli(_impact(REPO / "policies", current=copy))
    assert code != 0
    assert "warning: --current" not in err
    assert "keystore" in err


def test_the_table_says_how_many_event_records_were_read_and_why_some_were_not_compared(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """'263 read, 249 compared' was in --format json only (events_read), and said no why."""
    from broker.cli._impact import _print
    from broker.pipeline import compare
    from broker.pipeline._impact import Decided
    from broker.policy import Unversioned

    same = {("t", "e1", "coord"): Decided(True, "shared", None, "a", frozenset({"subject.name"}))}
    result = compare(same, same, versions=("sha256:" + "a" * 64, "sha256:" + "b" * 64))
    result.read, result.compared, result.not_compared = 4, 1, {"replay": 2, "invalid-event": 1}
    result.unversioned = (Unversioned("a", "4", ("clause x",)),)
    _print(result, "worker:impact-1")
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == (
        "4 event record(s) read: 1 compared; 3 decided for no one under either bundle, so not "
        "compared: replay 2, invalid-event 1"
    )
    assert result.as_json()["events_not_compared"] == {"replay": 2, "invalid-event": 1}
    assert result.as_json()["unversioned_agreements"] == [
        {"agreement": "a", "version": "4", "changed": ["clause x"]}
    ]
    # Nothing compared: the why is the whole story.
    empty = compare({}, {}, versions=("sha256:" + "a" * 64, "sha256:" + "b" * 64))
    empty.read, empty.not_compared = 2, {"unknown-sender": 2}
    _print(empty, "worker:impact-2")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("2 retained event record(s), none decided under either bundle")
    assert lines[1] == (
        "2 event record(s) read: 0 compared; 2 decided for no one under either bundle, so not "
        "compared: unknown-sender 2"
    )


def test_a_checkouts_policies_folder_holding_the_draft_is_no_other_baseline(
    run_cli: Run, unbumped: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from a checkout whose policies/ is the draft, it warned that the worker loads
    the draft: ACCORD_POLICIES unset, policies/ here is a guess, and the draft no baseline."""
    checkout = tmp_path / "checkout"
    shutil.copytree(unbumped, checkout / "policies")  # the draft, edited in a git checkout
    deployed = tmp_path / "srv-policies"
    shutil.copytree(REPO / "policies", deployed)  # what the worker really loads
    monkeypatch.chdir(checkout)
    for new in ("policies", str(unbumped)):  # the folder itself, and a copy of its bundle
        code, _, err = run_cli(["policy", "impact", "--policies", new, "--current",
                                str(deployed)])  # fmt: skip
        assert code != 0
        assert "warning: --current" not in err
        assert "keystore" in err


def test_a_third_bundle_in_policies_here_is_warned_of_as_a_guess(
    run_cli: Run, unbumped: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ACCORD_POLICIES the worker's folder is not known: said as an 'if'."""
    from broker.policy import load_bundle

    here = tmp_path / "here"
    shutil.copytree(REPO / "policies", here / "policies")
    path = here / "policies" / "agreements" / "wolverhampton-mash.yaml"
    path.write_text(path.read_text().replace("version: 4\n", "version: 5\n", 1))
    monkeypatch.chdir(here)
    code, _, err = run_cli(_impact(unbumped))
    assert code != 0
    [line] = [x for x in err.splitlines() if x.startswith("warning: --current")]
    old, there = load_bundle(REPO / "policies").version, load_bundle(here / "policies").version
    assert line == (
        f"warning: --current ({REPO / 'policies'}) is bundle {old}, but policies/ here is "
        f"bundle {there} (ACCORD_POLICIES is not set): if the worker loads ./policies, the "
        "changes are counted against --current, not what it runs"
    )


def test_the_workers_folder_holding_the_new_bundle_is_warned_of(
    run_cli: Run, unbumped: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ACCORD_POLICIES is the worker's folder, not a guess: holding the draft (the folder
    itself, or a copy), the worker already runs it, and --current is not what it runs."""
    from broker.policy import load_bundle

    monkeypatch.setenv("ACCORD_POLICIES", str(unbumped))
    copy = tmp_path / "draft-copy"
    shutil.copytree(unbumped, copy)
    old, new = load_bundle(REPO / "policies").version, load_bundle(unbumped).version
    for draft in (unbumped, copy):
        code, _, err = run_cli(_impact(draft))
        assert code != 0
        [line] = [x for x in err.splitlines() if x.startswith("warning: --current")]
        assert line == (
            f"warning: --current ({REPO / 'policies'}) is bundle {old}, but the worker loads "
            f"{unbumped} (ACCORD_POLICIES), bundle {new}: the changes are counted against "
            "--current"
        )


def test_the_draft_as_the_bundle_in_force_is_refused_in_one_line_naming_current(
    run_cli: Run, unbumped: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No --current and ACCORD_POLICIES holding the draft (the folder, or a copy): the draft
    was compared with itself and the run said nothing; now nothing is read."""
    from broker.policy import load_bundle

    version = load_bundle(unbumped).version
    monkeypatch.setenv("ACCORD_POLICIES", str(unbumped))
    copy = tmp_path / "draft-copy"
    shutil.copytree(unbumped, copy)
    for draft in (unbumped, copy):
        code, out, err = run_cli(["policy", "impact", "--policies", str(draft)])
        assert (code, out) == (2, "")
        assert err == (
            f"accord: error: the bundle in force ({unbumped}, from ACCORD_POLICIES) and "
            f"--policies ({draft}) are the same bundle, {version}: nothing to compare; name "
            "the one in force with --current DIR or ACCORD_POLICIES\n"
        )


def test_a_checkouts_policies_holding_the_draft_without_current_is_refused(
    run_cli: Run, unbumped: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ACCORD_POLICIES unset: policies/ here is taken as in force, and is the draft."""
    checkout = tmp_path / "checkout"
    shutil.copytree(unbumped, checkout / "policies")
    monkeypatch.chdir(checkout)
    code, out, err = run_cli(["policy", "impact", "--policies", "policies"])
    assert (code, out) == (2, "")
    [line] = err.splitlines()
    assert line.startswith("accord: error: the bundle in force (policies, policies/ here, as "
                           "ACCORD_POLICIES is not set) and --policies (policies) are the same "
                           "bundle, sha256:")  # fmt: skip
    assert line.endswith("--current DIR or ACCORD_POLICIES")


def test_current_naming_the_same_bundle_is_warned_of_and_the_run_goes_on(
    run_cli: Run, unbumped: Path, tmp_path: Path
) -> None:
    """Named on purpose (the benchmark re-decides under an unchanged copy): a warning that
    every decision will compare unchanged, then the run (here to the missing keystore)."""
    from broker.policy import load_bundle

    copy = tmp_path / "copy"
    shutil.copytree(unbumped, copy)
    code, _, err = run_cli(_impact(copy, current=unbumped))
    assert code != 0
    assert err.splitlines()[0] == (
        f"warning: --policies ({copy}) is the same bundle as --current ({unbumped}), "
        f"{load_bundle(unbumped).version}: every decision compares unchanged"
    )
    assert "keystore" in err.splitlines()[-1]


def test_help_says_since_is_by_publication_time_and_lists_the_exit_codes(run_cli: Run) -> None:
    code, out, _ = run_cli(["policy", "impact", "--help"])
    assert code == 0
    said = " ".join(out.replace("│", " ").split())
    assert (
        "By each Kafka record's timestamp (when it was published), not the event's "
        "occurred_at" in said
    )
    assert "Exit codes: 0 compared; 1 nothing compared, or another failure" in said
    assert "2 a usage or configuration error (a bundle that does not load" in said


def test_the_bundle_taken_as_in_force_is_noted_with_where_it_came_from(
    run_cli: Run, unbumped: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from a checkout without ACCORD_POLICIES, policies/ here was taken as in force
    and nothing said so: one note on stderr, whichever way it was named."""
    from broker.policy import load_bundle

    here = tmp_path / "here"
    shutil.copytree(REPO / "policies", here / "policies")
    version = load_bundle(REPO / "policies").version
    monkeypatch.chdir(here)

    def noted(*argv: str) -> str:
        code, _, err = run_cli(["policy", "impact", "--policies", str(unbumped), *argv])
        assert code != 0
        assert "keystore" in err.splitlines()[-1]  # the run went on, to the missing keystore
        [line] = [x for x in err.splitlines() if x.startswith("note: ")]
        return line

    assert noted() == (
        f"note: the bundle in force is taken to be policies (policies/ here, a guess: neither "
        f"--current nor ACCORD_POLICIES is set; name the one the worker loads with --current "
        f"DIR), {version}"
    )
    assert noted("--current", str(REPO / "policies")) == (
        f"note: the bundle in force is taken to be {REPO / 'policies'} (--current), {version}"
    )
    monkeypatch.setenv("ACCORD_POLICIES", str(here / "policies"))
    assert noted() == (
        f"note: the bundle in force is taken to be {here / 'policies'} (ACCORD_POLICIES), {version}"
    )
