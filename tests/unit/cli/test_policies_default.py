"""Which policy bundle a command uses when none is named: only the commands whose point is
trying the example fall back to it; every other refuses rather than act under it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from broker import provision as provision_module
from broker.cli import _logging as cli_logging
from broker.policy import load_bundle
from tests.unit.audit.conftest import Run
from tests.unit.policy.kit import event_dict

REPO = Path(__file__).resolve().parents[3]
REFUSAL = "accord: error: no policies/ here: pass --policies DIR or set ACCORD_POLICIES"


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with no policies/, no ACCORD_POLICIES, a home of its own."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("ACCORD_POLICIES", raising=False)
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path / "home"))
    return work


class _Plan:
    def rows(self) -> list[tuple[str, ...]]:
        return []


def _no_changes(*_: Any, **__: Any) -> _Plan:
    return _Plan()


def _nothing(*_: Any, **__: Any) -> None:
    return None


IMPACT_REFUSAL = "accord: error: no bundle in force: pass --current DIR or set ACCORD_POLICIES"


@pytest.mark.parametrize(
    ("argv", "refusal"),
    [
        (["kafka", "provision", "--dry-run"], REFUSAL),
        (["kafka", "provision", "--rotate", "cog-tipton", "--dry-run"], REFUSAL),
        (["worker"], REFUSAL),
        # --policies names the NEW bundle here: the one in force is what is missing.
        (["policy", "impact", "--policies", str(REPO / "policies")], IMPACT_REFUSAL),
        # A Compose render of the example would provision the example's logins and grants.
        (["deploy", "render", "--out", "rendered"], REFUSAL),
        (["console"], REFUSAL),
        (["desk", "--as", "cog-tipton"], REFUSAL),
        (["desk", "add-user", "--as", "cog-tipton", "kim.ward", "--password-stdin"], REFUSAL),
        (["desk", "flags", "--as", "sandwell-coord"], REFUSAL),
        (["keys", "init"], REFUSAL),
    ],
)
def test_a_command_that_acts_for_real_refuses_without_a_bundle_never_the_examples(
    argv: list[str], refusal: str, elsewhere: Path, run_cli: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """In the wrong folder without --policies, provisioning would reconcile a real cluster
    to the example bundle, and a worker decide real events under its agreements."""
    reached: list[object] = []

    def provision(*args: Any, **_: Any) -> None:
        reached.append(args)

    monkeypatch.setattr(provision_module, "provision", provision)
    monkeypatch.setattr(cli_logging, "configure_logging", _nothing)  # a worker's, in-process
    code, out, err = run_cli(argv)
    assert code != 0
    assert err.strip().splitlines() == [refusal]
    assert out == ""
    assert reached == []
    assert not (elsewhere / "rendered").exists()


def test_kafka_provision_says_which_bundle_and_version_before_acting(
    elsewhere: Path,
    capsys: pytest.CaptureFixture[str],
    run_cli: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    said: list[str] = []

    def provision(*_: Any, **__: Any) -> _Plan:
        said.append(capsys.readouterr().out)  # what was printed before anything was done
        return _Plan()

    monkeypatch.setattr(provision_module, "provision", provision)
    bundle = REPO / "policies"
    monkeypatch.setenv("ACCORD_POLICIES", str(bundle))
    code, out, err = run_cli(["kafka", "provision", "--dry-run"])
    assert code == 0, err
    version = load_bundle(bundle).version
    assert said == [f"policy bundle {bundle.resolve()}, version {version}\n"]
    assert out.strip().splitlines()[-1] == "0 change(s) planned; --dry-run: nothing changed"


def test_a_policies_folder_here_is_the_default_and_the_option_wins_over_it(
    elsewhere: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(provision_module, "provision", _no_changes)
    (elsewhere / "policies").symlink_to(REPO / "policies")
    code, out, _ = run_cli(["kafka", "provision", "--dry-run"])
    assert code == 0
    assert out.startswith(f"policy bundle {(elsewhere / 'policies').resolve()}, version ")
    missing = elsewhere / "nothing"
    code, _, err = run_cli(["kafka", "provision", "--dry-run", "--policies", str(missing)])
    assert code != 0
    assert str(missing) in err


def test_policy_explain_without_a_bundle_tries_the_example(elsewhere: Path, run_cli: Run) -> None:
    event = elsewhere / "event.json"
    event.write_text(json.dumps(event_dict()))
    code, out, err = run_cli(["policy", "explain", str(event), "--json"])
    assert code == 0, err
    assert json.loads(out)["policy_version"] == load_bundle(REPO / "policies").version


def test_policy_test_without_a_bundle_tries_the_example(elsewhere: Path, run_cli: Run) -> None:
    scenarios = REPO / "policies" / "scenarios"
    code, out, _ = run_cli(["policy", "test", str(scenarios)])
    assert code == 0, out
    assert out.strip().splitlines()[-1].endswith("passed, 0 failed")


@pytest.mark.parametrize(
    "argv",
    [
        ["desk", "--as", "cog-tipton"],
        ["desk", "add-user", "--as", "cog-tipton", "kim.ward", "--password-stdin"],
    ],
)
def test_the_desk_takes_the_bundle_the_refusal_tells_it_to(
    argv: list[str], elsewhere: Path, run_cli: Run
) -> None:
    """The refusal says 'pass --policies DIR': the desk's commands take it, and go on to what
    is missing next here (the party's keystore)."""
    code, _, err = run_cli([*argv, "--policies", str(REPO / "policies")])
    assert code != 0
    assert "no keystore" in err, err
    assert REFUSAL not in err
