"""`accord keys import` warns when the keystore holds none of the signing keys the directory
lists for its party (a keystore made again): everything it signed would be refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from broker.keys import FileKeyStore
from tests.unit.audit.conftest import Run


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ACCORD_KEYSTORE__PASSPHRASE", raising=False)
    monkeypatch.delenv("ACCORD_KEYSTORE__PATH", raising=False)
    return tmp_path / "home"


def test_importing_into_a_remade_keystore_warns_to_restore_it_and_a_first_import_does_not(
    tmp_path: Path, run_cli: Run
) -> None:
    gov, wmp = tmp_path / "governance", tmp_path / "wmp"
    for party, d in (("governance", gov), ("wmp", wmp)):
        assert run_cli(["keys", "init", "--party", party, "--dir", str(d)])[0] == 0
    entries, signed = tmp_path / "wmp.entries.json", tmp_path / "directory.json"
    cmd = ["keys", "export", "--party", "wmp", "--dir", str(wmp), "--out", str(entries)]
    assert run_cli(cmd)[0] == 0
    cmd = ["keys", "sign-directory", str(entries), "--out", str(signed), "--dir", str(gov)]
    assert run_cli(cmd)[0] == 0
    anchor = FileKeyStore(gov).current_signing_key("governance").info.key_id
    listed = [k.key_id for k in FileKeyStore(wmp).keys("wmp") if k.purpose.value == "sign"]
    [old_encrypt] = [
        k.key_id for k in FileKeyStore(wmp).keys("wmp") if k.purpose.value == "encrypt"
    ]
    importing = ["keys", "import", str(signed), "--dir", str(wmp), "--trust", anchor]

    code, _, err = run_cli(importing)  # the ceremony: its own keys, listed
    assert (code, err) == (0, "")

    shutil.rmtree(wmp)  # lost, and made again rather than restored
    assert run_cli(["keys", "init", "--party", "wmp", "--dir", str(wmp)])[0] == 0
    code, out, err = run_cli(importing)
    assert code == 0
    assert "imported" in out
    line, sealed = err.strip().splitlines()
    assert line.startswith("warning: this keystore holds none of the signing keys the key ")
    assert "restore wmp's keystore from its backup" in line
    assert line.endswith(f"the directory lists {listed[0]}")
    # Its listed encryption key is lost too: the broker seals wmp's deliveries to it.
    assert sealed.startswith(f"warning: the key directory lists encryption key {old_encrypt} ")
    assert "restore wmp's keystore from its backup" in sealed
