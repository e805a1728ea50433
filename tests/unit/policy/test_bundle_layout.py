"""What a bundle folder may hold: a file or folder that looks like policy under a name the
loader does not read is refused, naming it; notes, hidden files and scenarios are not policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.errors import BundleInvalid
from broker.policy import load_bundle
from tests.unit.policy.kit import write_bundle

REPO = Path(__file__).resolve().parents[3]


def _problems(root: Path) -> list[str]:
    with pytest.raises(BundleInvalid) as info:
        load_bundle(root)
    return info.value.problems


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("restriction.yaml", "did you mean restrictions.yaml?"),
        ("Restrictions.yaml", "did you mean restrictions.yaml?"),
        ("restrictions.YAML", "did you mean restrictions.yaml?"),
        ("restrictions.json", "did you mean restrictions.yaml?"),
        ("consent_authorities.yaml", "did you mean consent-authorities.yaml?"),
        ("flag.yml", "did you mean flags.yaml?"),
        ("agreement.yaml", "did you mean agreements/"),
        ("housing-pilot.yaml", "a bundle's own files are parties.yaml"),
    ],
)
def test_a_policy_file_under_a_name_the_loader_does_not_read_is_refused(
    tmp_path: Path, name: str, expected: str
) -> None:
    """restriction.yaml used to be skipped: 'ok', and the sensitive-services suppression gone."""
    root = write_bundle(tmp_path / "b")
    (root / "restrictions.yaml").rename(root / name)
    (problem,) = _problems(root)
    assert problem.startswith(f"{name}: not a file a policy bundle reads")
    assert expected in problem


def test_an_agreement_in_a_subfolder_is_refused(tmp_path: Path) -> None:
    root = write_bundle(tmp_path / "b")
    (root / "agreements" / "2026").mkdir()
    (root / "agreements" / "encompass.yaml").rename(root / "agreements" / "2026" / "e.yaml")
    (problem,) = _problems(root)
    assert problem.startswith("agreements/2026/: agreements are read from agreements/ itself")


@pytest.mark.parametrize("name", ["encompass.json", "encompass.YAML", "encompass.Yml"])
def test_an_agreement_file_not_ending_yaml_or_yml_is_refused(tmp_path: Path, name: str) -> None:
    root = write_bundle(tmp_path / "b")
    (root / "agreements" / "encompass.yaml").rename(root / "agreements" / name)
    (problem,) = _problems(root)
    assert problem == (
        f"agreements/{name}: an agreement file is read only if its name ends .yaml or .yml"
    )


@pytest.mark.parametrize(
    ("folder", "hint"),
    [
        ("agreement", "did you mean agreements/?"),
        ("drafts", "a bundle holds only agreements/ and scenarios/"),
    ],
)
def test_a_folder_the_loader_does_not_read_is_refused(
    tmp_path: Path, folder: str, hint: str
) -> None:
    root = write_bundle(tmp_path / "b")
    (root / folder).mkdir()
    (problem,) = _problems(root)
    assert problem == f"{folder}/: not a folder a policy bundle reads; {hint}"


def test_a_folder_or_broken_link_under_a_bundle_files_name_is_refused(tmp_path: Path) -> None:
    """Either would read as no file at all: no restrictions."""
    root = write_bundle(tmp_path / "b")
    (root / "restrictions.yaml").unlink()
    (root / "restrictions.yaml").mkdir()
    (root / "flags.yaml").symlink_to(tmp_path / "nowhere.yaml")
    assert _problems(root) == [
        "flags.yaml: not a file that can be read",
        "restrictions.yaml: not a file that can be read",
    ]


def test_notes_hidden_entries_and_scenarios_are_left_alone(tmp_path: Path) -> None:
    plain = load_bundle(write_bundle(tmp_path / "plain"))
    root = write_bundle(tmp_path / "b")
    (root / "README.md").write_text("# Our bundle\n")
    (root / ".git").mkdir()
    (root / ".git" / "config.yaml").write_text("not: policy\n")
    (root / "..data").mkdir()  # a Kubernetes ConfigMap volume's own entries
    (root / ".notes.yaml").write_text("x: 1\n")
    (root / "scenarios").mkdir()
    (root / "scenarios" / "s.yaml").write_text("name: a scenario\n")
    (root / "agreements" / ".gitkeep").write_text("")
    (root / "agreements" / "README.md").write_text("One file per agreement.\n")
    (root / "agreements" / ".#encompass.yaml").symlink_to(tmp_path / "an-editor-lock")
    assert load_bundle(root).version == plain.version


@pytest.mark.parametrize(
    "bundle", [REPO / "policies", REPO.parent / "shared" / "examples" / "policies"]
)
def test_the_project_and_example_bundles_pass_the_layout_check(bundle: Path) -> None:
    """The project's holds scenarios/; both hold every optional file."""
    assert load_bundle(bundle).counts[1] >= 3
