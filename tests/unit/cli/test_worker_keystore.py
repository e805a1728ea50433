"""`accord worker` without its keystore names the worker's own, and what to do about it."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.keys import FileKeyStore
from tests.unit.audit.conftest import Run

REPO = Path(__file__).resolve().parents[3]


def test_a_worker_whose_keystore_is_lost_names_it_and_never_bundle_mode_keys_init(
    tmp_path: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reviewer's platform host: keys/console and keys/indexer there, keys/worker gone.
    'no keystore at <keys>; run accord keys init' led to bundle-mode init, which makes every
    party's keys on the host. It says keys/worker, the backup, and keys init --party worker."""
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    keys = tmp_path / "keys"
    for principal in ("console", "indexer"):
        FileKeyStore(keys / principal, create=True)
    code, _, err = run_cli(["worker", "--policies", str(REPO / "policies")])
    assert code == 1
    assert len(err.splitlines()) == 1, err
    worker = keys / "worker"
    assert err.startswith(f"accord: error: no keystore for worker at {worker}: restore")
    assert f"'accord keys init --party worker --dir {worker}'" in err
    assert not worker.exists()


def test_an_empty_keys_folder_mounted_as_the_workers_keystore_is_named_as_it(
    tmp_path: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container mounts the worker's keystore as the keys folder: an empty mount is that
    keystore missing, named as the folder."""
    keys = tmp_path / "mounted"
    keys.mkdir()
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    monkeypatch.setenv("ACCORD_KEYSTORE__PATH", str(keys))
    code, _, err = run_cli(["worker", "--policies", str(REPO / "policies")])
    assert code == 1
    assert err.startswith(f"accord: error: no keystore for worker at {keys}: restore")
