"""`accord keys init|list|rotate|retire|revoke` in-process, and their one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker.cli import main
from broker.envelope import KeyStatus
from broker.keys import FileKeyStore

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ACCORD_KEYSTORE__PASSPHRASE", raising=False)
    monkeypatch.delenv("ACCORD_KEYSTORE__PATH", raising=False)
    return tmp_path / "home"


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    d = tmp_path / "policies"
    d.mkdir()
    (d / "parties.yaml").write_text(
        "parties:\n  wmp: {name: Police, kind: agency}\n  hub-a: {name: Hub, kind: hub}\n"
    )
    return d


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line_error(code: int, err: str, expected_code: int) -> str:
    assert code == expected_code
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("accord: error:")
    assert "Traceback" not in err
    return lines[0]


def test_init_creates_keys_for_bundle_parties_and_special_principals(
    bundle: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(["keys", "init", "--policies", str(bundle)], capsys)
    assert code == 0
    assert "9 new keys for 5 parties" in out
    store = FileKeyStore(home / "keys")
    assert store.parties() == ["audit", "governance", "hub-a", "wmp", "worker"]
    linkage = (home / "keys" / "linkage.key").read_bytes()
    assert len(linkage) == 32  # so 'accord audit subject' works before any worker has run
    code, out, _ = _run(["keys", "init", "--policies", str(bundle)], capsys)
    assert "0 new keys" in out
    assert (home / "keys" / "linkage.key").read_bytes() == linkage  # never replaced


def test_init_with_the_project_bundle_gives_every_party_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    policies = REPO / "policies"  # agreements, restrictions and scenarios beside parties.yaml
    parties = set(yaml.safe_load((policies / "parties.yaml").read_text())["parties"])
    code, out, _ = _run(
        ["keys", "init", "--policies", str(policies), "--dir", str(tmp_path / "k")], capsys
    )
    assert code == 0
    assert f"for {len(parties) + 3} parties" in out
    got = set(FileKeyStore(tmp_path / "k").parties())
    assert got == parties | {"worker", "audit", "governance"}
    assert "smethwick-fsp" in got  # a suspended party has keys too


def test_init_with_x25519(bundle: Path, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = _run(["keys", "init", "--policies", str(bundle), "--kem", "x25519"], capsys)
    assert code == 0
    assert FileKeyStore(home / "keys").current_encryption_key("wmp").alg.value == "x25519"


def test_list_json_rotate_and_revoke(
    bundle: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(["keys", "init", "--policies", str(bundle)], capsys)
    code, out, _ = _run(["keys", "list", "--party", "wmp", "--json"], capsys)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert {r["purpose"] for r in rows} == {"sign", "encrypt"}
    assert all(r["status"] == "active" for r in rows)

    code, out, _ = _run(["keys", "rotate", "wmp", "--grace-days", "1"], capsys)
    assert code == 0
    assert "rotated wmp" in out
    code, out, _ = _run(["keys", "list", "--party", "wmp", "--json"], capsys)
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 4
    assert sum(r["not_after"] is not None for r in rows) == 2

    victim = rows[0]["key_id"]
    code, out, _ = _run(["keys", "revoke", victim], capsys)
    assert code == 0
    assert f"revoked {victim}" in out
    info = FileKeyStore(home / "keys").public_key(victim)
    assert info is not None
    assert info.status is KeyStatus.REVOKED

    code, out, _ = _run(["keys", "retire", rows[1]["key_id"]], capsys)
    assert code == 0
    code, out, _ = _run(["keys", "list"], capsys)
    assert "revoked" in out
    assert "retired" in out


def test_list_table_has_a_header(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _run(["keys", "init", "--policies", str(bundle)], capsys)
    code, out, _ = _run(["keys", "list"], capsys)
    assert code == 0
    assert out.splitlines()[0].split() == [
        "PARTY",
        "PURPOSE",
        "ALG",
        "KEY_ID",
        "STATUS",
        "NOT_AFTER",
    ]


@pytest.mark.parametrize(
    ("argv", "expected_code", "fragment"),
    [
        (["keys", "revoke", "00"], 1, "no key with id"),
        (["keys", "rotate", "nobody"], 1, "no keys for party nobody"),
        (["keys", "rotate", "wmp", "--purpose", "other"], 2, "--purpose"),
        (["keys", "list", "--party", "nobody"], 2, "no keys for party"),
    ],
)
def test_mistakes_are_one_line_errors(
    bundle: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    expected_code: int,
    fragment: str,
) -> None:
    _run(["keys", "init", "--policies", str(bundle)], capsys)
    code, _, err = _run(argv, capsys)
    assert fragment in _one_line_error(code, err, expected_code)


def test_commands_before_init_say_so(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["keys", "list"], capsys)
    assert "accord keys init" in _one_line_error(code, err, 1)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "missing"),
        ("parties: [", "not valid YAML"),
        ("parties: []\n", "non-empty 'parties:'"),
        ("parties:\n  worker: {kind: agency}\n", "reserved"),
        ("parties:\n  'bad id': {kind: agency}\n", "must use letters"),
    ],
)
def test_bad_policy_bundles_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, fragment: str
) -> None:
    d = tmp_path / "p"
    d.mkdir()
    if content is not None:
        (d / "parties.yaml").write_text(content)
    code, _, err = _run(["keys", "init", "--policies", str(d)], capsys)
    assert fragment in _one_line_error(code, err, 2)


def test_missing_policy_dir_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(["keys", "init", "--policies", str(tmp_path / "none")], capsys)
    assert "policy bundle not found" in _one_line_error(code, err, 2)


def test_passphrase_from_settings_and_wrong_passphrase(
    bundle: Path, home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCORD_KEYSTORE__PASSPHRASE", "synthetic-passphrase")
    code, _, _ = _run(["keys", "init", "--policies", str(bundle)], capsys)
    assert code == 0
    meta = json.loads((home / "keys" / "keystore.json").read_text())
    assert meta["protection"] == "scrypt"
    code, _, _ = _run(["keys", "list"], capsys)
    assert code == 0
    monkeypatch.setenv("ACCORD_KEYSTORE__PASSPHRASE", "not-it")
    code, _, err = _run(["keys", "list"], capsys)
    line = _one_line_error(code, err, 1)
    assert "wrong passphrase" in line
    assert "not-it" not in line
