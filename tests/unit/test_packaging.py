"""accord-broker (the default install) and accord-sdk (the lean one) are one package."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _project(path: Path) -> dict[str, object]:
    project: dict[str, object] = tomllib.loads(path.read_text())["project"]
    return project


BROKER = _project(REPO / "pyproject.toml")
SDK = _project(REPO / "packaging" / "sdk" / "pyproject.toml")


def test_the_sdk_is_the_same_version_and_command() -> None:
    assert SDK["version"] == BROKER["version"]
    assert SDK["scripts"] == BROKER["scripts"]
    assert SDK["requires-python"] == BROKER["requires-python"]


def test_the_sdk_dependencies_are_the_first_block_of_the_brokers_exactly() -> None:
    """Same pins, so an agency's SDK and the broker never disagree on a library version."""
    sdk, broker = SDK["dependencies"], BROKER["dependencies"]
    assert isinstance(sdk, list)
    assert isinstance(broker, list)
    assert broker[: len(sdk)] == sdk


def test_the_default_install_has_no_extras_to_remember() -> None:
    """`pip install accord-broker` is the broker; only test tooling is an extra."""
    assert set(BROKER.get("optional-dependencies", {})) == {"test"}  # type: ignore[arg-type]
