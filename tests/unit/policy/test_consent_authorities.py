"""consent-authorities.yaml: who may record consent, checked like the rest of the bundle."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from broker.errors import BundleInvalid
from broker.policy import load_bundle

POLICIES = Path(__file__).resolve().parents[3] / "policies"


def _bundle_with(tmp_path: Path, authorities: str) -> Path:
    bundle = tmp_path / "policies"
    shutil.copytree(POLICIES, bundle)
    (bundle / "consent-authorities.yaml").write_text(authorities)
    return bundle


def test_the_projects_authorities_load_and_change_the_bundle_version(tmp_path: Path) -> None:
    policy = load_bundle(POLICIES)
    assert policy.bundle.consent_authorities is not None
    assert policy.bundle.consent_authorities["hv-wolverhampton"].purposes == ("early_help",)
    without = tmp_path / "without"
    shutil.copytree(POLICIES, without)
    (without / "consent-authorities.yaml").unlink()
    assert load_bundle(without).version != policy.version


def test_an_unknown_party_or_kind_is_a_bundle_problem(tmp_path: Path) -> None:
    bundle = _bundle_with(tmp_path, (
        "consent_authorities:\n"
        "  nobody-here: {purposes: ['*'], recipients: ['*']}\n"
        "  sandwell-coord: {purposes: ['*'], recipients: ['kind:wizard', 'cog-nowhere']}\n"
    ))  # fmt: skip
    with pytest.raises(BundleInvalid) as err:
        load_bundle(bundle)
    problems = "\n".join(err.value.problems)
    assert "consent-authorities.yaml" in problems
    assert "unknown party 'nobody-here'" in problems
    assert "unknown party or kind 'kind:wizard'" in problems
    assert "unknown party or kind 'cog-nowhere'" in problems


def test_a_malformed_file_names_the_key(tmp_path: Path) -> None:
    bundle = _bundle_with(tmp_path, "consent_authorities:\n  sandwell-coord: {purposes: []}\n")
    with pytest.raises(BundleInvalid) as err:
        load_bundle(bundle)
    assert any("sandwell-coord" in p for p in err.value.problems)
