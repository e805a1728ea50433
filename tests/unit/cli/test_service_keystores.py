"""Every service without its keystore names its own store and what to do, as the worker does.

The console, a desk, the gateway and the indexer once each said it differently: a folder
with a placeholder, a bare "no keystore for X (path)", or the console's store for the
indexer's."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.keys import FileKeyStore
from tests.unit.audit.conftest import Run

REPO = Path(__file__).resolve().parents[3]
TOKEN = "t" * 40


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A host of one keystore per principal that holds only the worker's."""
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    monkeypatch.setenv("ACCORD_POLICIES", str(REPO / "policies"))
    monkeypatch.setenv("ACCORD_KEYSTORE__PROTECTION", "none")
    monkeypatch.setenv("ACCORD_GATEWAY__TOKEN", TOKEN)
    keys = tmp_path / "keys"
    FileKeyStore(keys / "worker", create=True)
    return keys


@pytest.mark.parametrize(
    ("argv", "principal"),
    [
        (["console"], "console"),
        (["desk", "--as", "sandwell-coord"], "sandwell-coord"),
        (["gateway", "--as", "wmp"], "wmp"),
    ],
)
def test_a_service_without_its_keystore_names_its_own_and_the_backup(
    host: Path, run_cli: Run, argv: list[str], principal: str
) -> None:
    code, _, err = run_cli(argv)
    own = host / principal
    assert code != 0
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"accord: error: no keystore for {principal} at {own}: restore")
    assert f"'accord keys init --party {principal} --dir {own}'" in err
    assert not own.exists()


def test_the_indexer_without_a_keystore_is_told_to_import_the_directory_not_the_consoles(
    host: Path, run_cli: Run
) -> None:
    """It holds public keys only: keys init would give it private keys it must not have."""
    code, _, err = run_cli(["audit", "index", "--once"])
    own = host / "indexer"
    assert code != 0
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"accord: error: no keystore for the indexer at {own}:")
    assert f"'accord keys import directory.json --dir {own}" in err
    assert "console" not in err
