"""`accord keys sign-directory` says what it signs and refuses what no honest export holds;
`accord keys import` says loudly when a new governance key becomes trusted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker.config import KemSuite
from broker.envelope import KeyPurpose
from broker.keys import FileKeyStore
from broker.keys._directory import entry_json
from broker.keys._entries import sign_entries
from tests.unit.audit.conftest import Run


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ACCORD_KEYSTORE__PASSPHRASE", raising=False)
    monkeypatch.delenv("ACCORD_KEYSTORE__PATH", raising=False)
    monkeypatch.delenv("ACCORD_POLICIES", raising=False)
    monkeypatch.chdir(tmp_path)  # no policies/ here unless a test makes one
    return tmp_path / "home"


_NOTE = "WARNING: --no-party-check"


def _one_line_error(code: int, err: str) -> str:
    assert code != 0
    [line] = [line for line in err.strip().splitlines() if not line.startswith(_NOTE)]
    assert line.startswith("accord: error:")
    return line


@pytest.fixture
def ceremony(tmp_path: Path, run_cli: Run) -> dict[str, Path]:
    """wmp's and the IG officer's keystores, and wmp's export."""
    dirs = {p: tmp_path / p for p in ("wmp", "governance")}
    for party, d in dirs.items():
        assert run_cli(["keys", "init", "--party", party, "--dir", str(d)])[0] == 0
    dirs["wmp.json"] = tmp_path / "wmp.json"
    cmd = ["keys", "export", "--party", "wmp", "--dir", str(dirs["wmp"]), "--out"]
    assert run_cli([*cmd, str(dirs["wmp.json"])])[0] == 0
    return dirs


def _sign(dirs: dict[str, Path], *files: Path | str) -> list[str]:
    out = dirs["governance"].parent / "directory.json"
    return ["keys", "sign-directory", *map(str, files), "--out", str(out),
            "--dir", str(dirs["governance"]), "--no-party-check"]  # fmt: skip


def test_sign_directory_prints_each_key_it_adds_and_says_parties_were_not_checked(
    ceremony: dict[str, Path], run_cli: Run
) -> None:
    code, out, err = run_cli(_sign(ceremony, ceremony["wmp.json"]))
    assert code == 0
    for key in FileKeyStore(ceremony["wmp"]).keys("wmp"):
        assert f"  adds wmp {key.purpose.value} key {key.key_id}: active, no expiry\n" in out
    assert err == (
        "WARNING: --no-party-check: the entries' parties were NOT checked against a policy "
        "bundle's parties.yaml: read every party id in the change list below\n"
    )
    code, out, _ = run_cli(_sign(ceremony))  # no files: the master copy signed again
    assert code == 0
    assert "  no key added, revoked or changed since directory 1\n" in out


def test_sign_directory_lists_keys_revoked_in_the_master_copy_since_the_last_one(
    ceremony: dict[str, Path], run_cli: Run
) -> None:
    """A stolen keystore: the officer revokes its keys in the governance keystore, then
    signs. Those revocations are in the master copy already; the change list is against
    the last directory signed, so it names them (party, key id; no key material)."""
    assert run_cli(_sign(ceremony, ceremony["wmp.json"]))[0] == 0
    keys = FileKeyStore(ceremony["wmp"]).keys("wmp")
    for key in keys:
        cmd = ["keys", "revoke", key.key_id, "--dir", str(ceremony["governance"])]
        assert run_cli(cmd)[0] == 0
    dry = [*_sign(ceremony), "--dry-run"]
    for argv in (dry, _sign(ceremony)):
        code, out, _ = run_cli(argv)
        assert code == 0
        for key in keys:
            line = f"  revokes wmp {key.purpose.value} key {key.key_id}: was active, no expiry\n"
            assert line in out
        assert "no key added" not in out
        assert '"public' not in out  # ids only, never key material
    code, out, _ = run_cli(_sign(ceremony))  # said once; the next says nothing new
    assert "  no key added, revoked or changed since directory 2\n" in out


def test_sign_directory_with_no_record_of_the_last_one_never_says_nothing_changed(
    ceremony: dict[str, Path], run_cli: Run
) -> None:
    """A keystore whose last directory was signed before its listing was kept: a
    revocation made here since cannot be told apart, so it is not said to be none."""
    assert run_cli(_sign(ceremony, ceremony["wmp.json"]))[0] == 0
    trust = ceremony["governance"] / "trust.json"
    data = json.loads(trust.read_text())
    del data["last_signed"]
    trust.write_text(json.dumps(data))
    code, out, _ = run_cli(_sign(ceremony))
    assert code == 0
    assert "keys revoked or retired here since are not shown, and the next signing" in out
    assert "will not list them either" in out
    assert "since directory" not in out


def test_sign_directory_that_could_not_be_written_is_not_what_the_next_is_compared_with(
    ceremony: dict[str, Path], tmp_path: Path, run_cli: Run
) -> None:
    """--out in a folder that does not exist: the signing fails, and the keystore must not
    record that unpublished directory as the last, or the revocation it held would never
    be listed by the signing that does publish it."""
    assert run_cli(_sign(ceremony, ceremony["wmp.json"]))[0] == 0
    [key, *_] = FileKeyStore(ceremony["wmp"]).keys("wmp")
    assert run_cli(["keys", "revoke", key.key_id, "--dir", str(ceremony["governance"])])[0] == 0
    nowhere = tmp_path / "missing" / "directory.json"
    argv = _sign(ceremony)
    argv[argv.index("--out") + 1] = str(nowhere)
    code, _, err = run_cli(argv)
    assert f"No such file or directory ({nowhere})" in _one_line_error(code, err)
    assert not (tmp_path / "missing").exists()
    code, out, _ = run_cli(_sign(ceremony))
    assert code == 0
    line = f"  revokes wmp {key.purpose.value} key {key.key_id}: was active, no expiry\n"
    assert line in out
    assert "no key added" not in out
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_sign_directory_with_no_bundle_here_refuses_entries_unless_no_party_check(
    ceremony: dict[str, Path], tmp_path: Path, run_cli: Run
) -> None:
    """Default deny: with no parties.yaml to check against, a look-alike party would join
    unchecked, so entries are signed only with --no-party-check (the master copy alone is)."""
    argv = _sign(ceremony, ceremony["wmp.json"])[:-1]
    code, _, err = run_cli(argv)
    line = _one_line_error(code, err)
    assert "no policy bundle here" in line
    assert "--no-party-check" in line
    assert not (tmp_path / "directory.json").exists()
    assert run_cli(_sign(ceremony)[:-1])[0] == 0


def test_sign_directory_refuses_a_governance_key_from_a_file_in_one_line(
    ceremony: dict[str, Path], tmp_path: Path, run_cli: Run
) -> None:
    elsewhere = FileKeyStore(tmp_path / "forger", None, create=True)
    [forged] = elsewhere.ensure_party("governance", purposes=[KeyPurpose.SIGN])
    forged_file = tmp_path / "governance.json"
    forged_file.write_text(json.dumps({
        "format": "accord-key-entries/v1", "party": "governance", "keys": [entry_json(forged)],
    }))  # fmt: skip
    code, _, err = run_cli(_sign(ceremony, ceremony["wmp.json"], forged_file))
    line = _one_line_error(code, err)
    assert f"{forged_file}: lists governance key {forged.key_id}" in line
    assert line.endswith("nothing was signed")
    assert not (tmp_path / "directory.json").exists()


def test_sign_directory_refuses_a_second_lasting_key_unless_allow_second_key(
    ceremony: dict[str, Path], tmp_path: Path, run_cli: Run
) -> None:
    assert run_cli(_sign(ceremony, ceremony["wmp.json"]))[0] == 0
    elsewhere = FileKeyStore(tmp_path / "other", None, create=True)
    [extra] = elsewhere.ensure_party("wmp", purposes=[KeyPurpose.ENCRYPT], kem=KemSuite.HYBRID)
    document = json.loads(ceremony["wmp.json"].read_text())
    document["keys"].append(entry_json(extra))
    signer = FileKeyStore(ceremony["wmp"]).current_signing_key("wmp")
    ceremony["wmp.json"].write_text(json.dumps(sign_entries(document, signer)))  # wmp's own
    code, _, err = run_cli(_sign(ceremony, ceremony["wmp.json"]))
    line = _one_line_error(code, err)
    assert f"gives wmp a new active encrypt key {extra.key_id} while its encrypt key" in line
    code, out, _ = run_cli([*_sign(ceremony, ceremony["wmp.json"]), "--allow-second-key"])
    assert code == 0
    assert f"  adds wmp encrypt key {extra.key_id}: active, no expiry\n" in out


def test_sign_directory_checks_parties_against_the_configured_bundle(
    ceremony: dict[str, Path], tmp_path: Path, run_cli: Run
) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "parties.yaml").write_text(
        "parties:\n  wmpp: {name: Police, kind: agency}\n"
    )
    code, _, err = run_cli(_sign(ceremony, ceremony["wmp.json"]))
    line = _one_line_error(code, err)
    assert "of wmp, no party of the policy bundle's parties.yaml (did you mean wmpp?)" in line


def test_import_warns_loudly_when_a_new_governance_key_becomes_trusted(
    ceremony: dict[str, Path], run_cli: Run
) -> None:
    gov, wmp = ceremony["governance"], ceremony["wmp"]
    directory = gov.parent / "directory.json"
    assert run_cli(_sign(ceremony, ceremony["wmp.json"]))[0] == 0
    anchor = FileKeyStore(gov).current_signing_key("governance").info.key_id
    code, _, err = run_cli(["keys", "import", str(directory), "--dir", str(wmp), "--trust", anchor])
    assert (code, err) == (0, "")  # the key given with --trust was checked already

    cmd = ["keys", "rotate", "governance", "--dir", str(gov), "--purpose", "sign"]
    assert run_cli(cmd)[0] == 0
    [new] = [
        k.key_id
        for k in FileKeyStore(gov).keys("governance")
        if k.purpose is KeyPurpose.SIGN and k.key_id != anchor
    ]
    assert run_cli(_sign(ceremony))[0] == 0  # signed by the old key, introducing the new
    code, _, err = run_cli(["keys", "import", str(directory), "--dir", str(wmp)])
    assert code == 0
    [line] = err.strip().splitlines()
    assert line.startswith(f"WARNING: this keystore now trusts a NEW governance signing key {new}")
    assert "verify this id with the IG officer out of band" in line
    code, _, err = run_cli(["keys", "import", str(directory), "--dir", str(wmp)])
    assert (code, err) == (0, "")  # said once, when it became trusted


def _forged(ceremony: dict[str, Path], tmp_path: Path) -> Path:
    """wmp's keys as the master copy lists them, plus someone else's new signing key."""
    elsewhere = FileKeyStore(tmp_path / "forger", None, create=True)
    [extra] = elsewhere.ensure_party("wmp", purposes=[KeyPurpose.SIGN])
    listed = FileKeyStore(ceremony["governance"]).keys("wmp")
    forged = tmp_path / "forged-wmp.json"
    forged.write_text(json.dumps({
        "format": "accord-key-entries/v1", "party": "wmp",
        "keys": [*(entry_json(k) | {"not_after": "2026-01-01T00:00:00Z"} for k in listed),
                 entry_json(extra)],
    }))  # fmt: skip
    return forged


def test_export_says_it_signed_and_sign_directory_refuses_unsigned_entries_of_a_listed_party(
    ceremony: dict[str, Path], tmp_path: Path, run_cli: Run
) -> None:
    signer = FileKeyStore(ceremony["wmp"]).current_signing_key("wmp").info.key_id
    cmd = ["keys", "export", "--party", "wmp", "--dir", str(ceremony["wmp"]), "--out"]
    code, out, err = run_cli([*cmd, str(tmp_path / "again.json")])
    assert (code, err) == (0, "")
    assert out == f"wmp's public keys written to {tmp_path / 'again.json'}, signed by wmp's " \
        f"signing key {signer}\n"  # fmt: skip
    assert run_cli(_sign(ceremony, ceremony["wmp.json"]))[0] == 0  # first onboarding
    directory = tmp_path / "directory.json"
    directory.unlink()
    forged = _forged(ceremony, tmp_path)
    code, _, err = run_cli(_sign(ceremony, forged))
    line = _one_line_error(code, err)
    assert line == (
        f"accord: error: {forged}: wmp already has keys in the directory, so its entries must "
        "be signed by one of them (accord keys export signs them; for a party that lost every "
        "one, see --unsigned); nothing was signed"
    )
    assert not directory.exists()
    # The honest export, signed by wmp's listed key, is taken as before.
    assert run_cli(_sign(ceremony, tmp_path / "again.json"))[0] == 0


def test_unsigned_party_signs_a_listed_partys_unsigned_entries_with_a_loud_warning(
    ceremony: dict[str, Path], tmp_path: Path, run_cli: Run
) -> None:
    assert run_cli(_sign(ceremony, ceremony["wmp.json"]))[0] == 0
    forged = _forged(ceremony, tmp_path)  # here: wmp's keys re-made after losing them all
    code, out, err = run_cli([*_sign(ceremony, forged), "--unsigned", "wmp"])
    assert code == 0
    assert "signed directory written to" in out
    [warning] = [line for line in err.splitlines() if not line.startswith(_NOTE)]
    assert warning == (
        "WARNING: wmp's entries were signed into the directory WITHOUT proof that wmp sent "
        "them (--unsigned wmp): every keystore will trust these keys; be sure you checked "
        "their fingerprints with wmp out of band"
    )


def test_export_warns_when_it_cannot_sign(ceremony: dict[str, Path], run_cli: Run) -> None:
    wmp = FileKeyStore(ceremony["wmp"])
    wmp.retire(wmp.current_signing_key("wmp").info.key_id)
    code, out, err = run_cli(["keys", "export", "--party", "wmp", "--dir", str(ceremony["wmp"])])
    assert code == 0
    assert "signed_by" not in json.loads(out)
    assert err.startswith("warning: wmp's entries are not signed: this keystore holds no live ")
    assert "--unsigned wmp" in err


def test_export_warns_when_its_signer_is_not_in_the_last_directory_taken(
    ceremony: dict[str, Path], tmp_path: Path, run_cli: Run
) -> None:
    """The master copy takes a listed party's export only under a key it lists: an export
    signed by a key the keystore's last directory does not list says so on stderr."""
    gov, wmp = ceremony["governance"], ceremony["wmp"]
    assert run_cli(_sign(ceremony))[0] == 0  # a directory not listing wmp
    anchor = FileKeyStore(gov).current_signing_key("governance").info.key_id
    directory = gov.parent / "directory.json"
    cmd = ["keys", "import", str(directory), "--dir", str(wmp), "--trust", anchor]
    assert run_cli(cmd)[0] == 0
    signer = FileKeyStore(wmp).current_signing_key("wmp").info.key_id
    cmd = ["keys", "export", "--party", "wmp", "--dir", str(wmp), "--out"]
    code, _, err = run_cli([*cmd, str(tmp_path / "again.json")])
    assert code == 0
    assert err.startswith(
        f"warning: wmp's entries are signed by key {signer}, which the last key directory "
        "this keystore took does not list"
    )
    assert run_cli(_sign(ceremony, ceremony["wmp.json"]))[0] == 0
    assert run_cli(["keys", "import", str(directory), "--dir", str(wmp)])[0] == 0
    code, _, err = run_cli([*cmd, str(tmp_path / "again.json")])
    assert (code, err) == (0, "")


def test_sign_directory_dry_run_prints_the_change_list_and_signs_nothing(
    ceremony: dict[str, Path], tmp_path: Path, run_cli: Run
) -> None:
    """--dry-run shows what signing would add, before anything is signed: no directory
    written, no serial used, the master copy as it was."""
    gov = ceremony["governance"]
    trust_before = (gov / "trust.json").read_bytes() if (gov / "trust.json").exists() else None
    code, out, _ = run_cli([*_sign(ceremony, ceremony["wmp.json"]), "--dry-run"])
    assert code == 0
    assert out.startswith("dry run: nothing signed or written")
    for key in FileKeyStore(ceremony["wmp"]).keys("wmp"):
        assert f"  adds wmp {key.purpose.value} key {key.key_id}: active, no expiry\n" in out
    assert not (tmp_path / "directory.json").exists()
    assert FileKeyStore(gov).keys("wmp") == []
    after = (gov / "trust.json").read_bytes() if (gov / "trust.json").exists() else None
    assert after == trust_before


def test_a_dry_run_needs_no_out_and_warns_of_entries_it_would_take_unsigned(
    ceremony: dict[str, Path], tmp_path: Path, run_cli: Run
) -> None:
    """The --unsigned warning is the one an officer most needs before signing, and a dry run
    that writes nothing asked for --out (review r45f)."""
    assert run_cli(_sign(ceremony, ceremony["wmp.json"]))[0] == 0
    forged = _forged(ceremony, tmp_path)
    argv = [a for a in _sign(ceremony, forged) if a != "--out"]
    argv.remove(str(ceremony["governance"].parent / "directory.json"))
    code, out, err = run_cli([*argv, "--unsigned", "wmp", "--dry-run"])
    assert code == 0
    assert out.startswith("dry run: nothing signed or written")
    assert "WARNING: wmp's entries would be signed into the directory WITHOUT proof" in err
    code, _, err = run_cli(argv)
    assert _one_line_error(code, err) == (
        "accord: error: --out: name where the signed directory goes (or give --dry-run)"
    )
