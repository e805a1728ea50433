"""`accord keys init|list|rotate|retire|revoke` in-process, and their one-line errors."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from broker.desk import desk_linkage_key, linkage_secret_name
from broker.envelope import KeyStatus
from broker.errors import KeyStoreError
from broker.keys import FileKeyStore
from broker.webauth import device_key, device_secret_name
from tests.unit.audit.conftest import Run

REPO = Path(__file__).resolve().parents[3]


def _device(owner: str) -> str:
    return f"{device_secret_name(owner)}.secret"


def _linkage(party: str) -> str:
    return f"{linkage_secret_name(party)}.secret"


def _plain(path: Path, secret: bytes) -> Path:
    path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    path.write_bytes(secret)
    path.chmod(0o600)
    return path


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


def _one_line_error(code: int, err: str, expected_code: int) -> str:
    assert code == expected_code
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("accord: error:")
    assert "Traceback" not in err
    return lines[0]


def test_init_makes_a_keystore_per_party_each_with_only_its_own_private_keys(
    bundle: Path, home: Path, run_cli: Run
) -> None:
    code, out, _ = run_cli(["keys", "init", "--policies", str(bundle)])
    assert code == 0
    assert "5 keystores" in out
    principals = ["console", "governance", "hub-a", "wmp", "worker"]
    for principal in principals:
        store = FileKeyStore(home / "keys" / principal)
        assert store.private_parties() == [principal]
        assert store.parties() == principals  # everyone's public keys, from the directory
    worker = FileKeyStore(home / "keys" / "worker").linkage_key()
    assert FileKeyStore(home / "keys" / "console").linkage_key() == worker
    with pytest.raises(KeyStoreError, match="no linkage key"):
        FileKeyStore(home / "keys" / "wmp").linkage_key()  # an agency never holds it
    code, _, err = run_cli(["keys", "init", "--policies", str(bundle)])
    assert "holds keystores already (console, governance, hub-a, wmp, worker)" in (
        _one_line_error(code, err, 2)
    )
    assert FileKeyStore(home / "keys" / "worker").linkage_key() == worker  # never replaced
    assert len(FileKeyStore(home / "keys" / "wmp").keys("wmp")) == 2  # no new keys


def test_init_for_a_whole_bundle_refuses_a_keys_folder_that_holds_any_keystore(
    bundle: Path, home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reviewer's worker host: the console's and the indexer's keystores, each under a
    passphrase of its own, the worker's lost. Bundle-mode init there would make every party's
    keys on the platform host, then stop at the console's passphrase; it makes nothing, and
    says what to run instead."""
    keys = home / "keys"
    monkeypatch.setenv("ACCORD_KEYSTORE__PASSPHRASE", "the console's own")
    assert run_cli(["keys", "init", "--party", "console", "--dir", str(keys / "console")])[0] == 0
    monkeypatch.setenv("ACCORD_KEYSTORE__PASSPHRASE", "the indexer's own")
    assert run_cli(["keys", "init", "--party", "indexer", "--dir", str(keys / "indexer")])[0] == 0
    monkeypatch.setenv("ACCORD_KEYSTORE__PASSPHRASE", "the worker's own")
    before = sorted(p.relative_to(keys) for p in keys.rglob("*"))
    code, _, err = run_cli(["keys", "init", "--policies", str(bundle)])
    line = _one_line_error(code, err, 2)
    assert f"{keys} holds keystores already (console, indexer)" in line
    assert f"'accord keys init --party PRINCIPAL --dir {keys / 'PRINCIPAL'}'" in line
    assert "restore it from its backup" in line
    assert sorted(p.relative_to(keys) for p in keys.rglob("*")) == before  # nothing made


@pytest.mark.parametrize("fails", ["enrolment", "signing"])
def test_a_failed_keys_init_for_a_whole_bundle_removes_every_store_it_made(
    fails: str,
    bundle: Path,
    home: Path,
    run_cli: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As docs/operations.md promises: a first keys init that fails leaves no keystore
    behind, for the next to take a half-made one (no directory, no linkage key) for a whole
    one. An empty keys folder given stays, empty."""
    import broker.cli._keys as keys_cli
    import broker.keys._exchange as exchange

    def broken(*_: object, **__: object) -> None:
        raise KeyStoreError("the disk filled up")

    if fails == "enrolment":
        monkeypatch.setattr(keys_cli, "_enrolment_secrets", broken)
    else:
        monkeypatch.setattr(exchange, "sign_directory", broken)
    code, _, err = run_cli(["keys", "init", "--policies", str(bundle)])
    assert "the disk filled up" in _one_line_error(code, err, 1)
    assert not (home / "keys").exists()
    (home / "keys").mkdir(mode=0o700)
    assert run_cli(["keys", "init", "--policies", str(bundle)])[0] == 1
    assert list((home / "keys").iterdir()) == []


def test_init_party_makes_that_partys_keys_only(tmp_path: Path, run_cli: Run) -> None:
    code, out, _ = run_cli(["keys", "init", "--party", "wmp", "--dir", str(tmp_path / "w")])
    assert code == 0
    assert "2 new keys for wmp" in out
    assert FileKeyStore(tmp_path / "w").parties() == ["wmp"]
    code, _, _ = run_cli(["keys", "init", "--party", "console", "--dir", str(tmp_path / "c")])
    assert [k.purpose.value for k in FileKeyStore(tmp_path / "c").keys(party=None)] == ["sign"]


def test_init_gives_the_console_and_a_party_their_second_factor_key_at_once(
    tmp_path: Path, run_cli: Run
) -> None:
    """Made with the store, so a keystore archived for Kubernetes (unpacked into memory at
    each start) carries it, and officers' codes survive a restart: no server makes it. A
    party's is its desk's; the worker's and governance's stores have no accounts."""
    for party in ("console", "cog-tipton", "worker"):
        run_cli(["keys", "init", "--party", party, "--dir", str(tmp_path / party)])
    for owner, app in (("console", "console"), ("cog-tipton", "desk:cog-tipton")):  # and
        assert (tmp_path / owner / "users-totp.secret").is_file()  # the device key
        assert (tmp_path / owner / _device(app)).is_file()
    assert (tmp_path / "cog-tipton" / _linkage("cog-tipton")).is_file()  # a desk's only
    assert not list((tmp_path / "console").glob("desk-linkage*"))
    assert not [p for p in (tmp_path / "worker").iterdir() if p.suffix == ".secret"]
    names = ("users-totp.secret", _device("desk:cog-tipton"), _linkage("cog-tipton"))
    again = [(tmp_path / "cog-tipton" / name).read_bytes() for name in names]
    run_cli(["keys", "init", "--party", "cog-tipton", "--dir", str(tmp_path / "cog-tipton")])
    assert [(tmp_path / "cog-tipton" / name).read_bytes() for name in names] == again  # kept


@pytest.mark.parametrize("where", ["--policies", "configured"])
def test_init_makes_no_desk_or_web_secrets_for_a_party_the_bundle_names_an_agency(
    where: str,
    bundle: Path,
    tmp_path: Path,
    run_cli: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An agency runs no desk: its keystore holds its keys only. A recipient, or a party the
    bundle does not know (or with no bundle to read), gets its desk's secrets as before."""
    if where == "--policies":
        given = ["--policies", str(bundle)]
    else:
        monkeypatch.setenv("ACCORD_POLICIES", str(bundle))
        given = []
    known = ["hub-a"] if given else ["hub-a", "unknown-party"]  # --policies: refused (below)
    for party in ("wmp", *known):
        argv = ["keys", "init", "--party", party, "--dir", str(tmp_path / party), *given]
        assert run_cli(argv)[0] == 0
    assert not [p.name for p in (tmp_path / "wmp").iterdir() if p.suffix == ".secret"]
    assert FileKeyStore(tmp_path / "wmp").private_parties() == ["wmp"]
    for party in known:
        made = {p.name for p in (tmp_path / party).iterdir() if p.suffix == ".secret"}
        assert made == {"users-totp.secret", _device(f"desk:{party}"), _linkage(party)}


def test_a_failed_first_keys_init_leaves_no_keystore_behind(
    tmp_path: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A half-made keystore (an empty private/, no keys) would be taken for a whole one."""
    import broker.cli._keys as keys_cli

    def broken(*_: object, **__: object) -> None:
        raise KeyStoreError("the disk filled up")

    monkeypatch.setattr(keys_cli, "_enrolment_secrets", broken)
    code, _, err = run_cli(["keys", "init", "--party", "hub-a", "--dir", str(tmp_path / "k")])
    assert code != 0
    assert "the disk filled up" in err
    assert not (tmp_path / "k").exists()
    (tmp_path / "empty").mkdir(mode=0o700)
    assert run_cli(["keys", "init", "--party", "hub-a", "--dir", str(tmp_path / "empty")])[0]
    assert list((tmp_path / "empty").iterdir()) == []


def test_init_moves_an_older_desks_plain_secrets_into_the_party_s_keystore(
    tmp_path: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run again on a keystore made before (existing keys stay), it seals the linkage secret
    an older desk kept beside it and the device-cookie key beside its accounts, the same
    bytes, and removes both files."""
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    keys = tmp_path / "keys"  # the keys folder is the party's keystore
    assert run_cli(["keys", "init", "--party", "sandwell-coord"])[0] == 0
    for name in (_linkage("sandwell-coord"), _device("desk:sandwell-coord")):
        (keys / name).unlink()  # as an older Accord left the keystore
    users = tmp_path / "desk" / "sandwell-coord" / "users.json"
    linkage, device = os.urandom(32), os.urandom(32)
    plains = [_plain(keys / "desk-linkage.key", linkage),
              _plain(users.parent / "device-cookie.key", device)]  # fmt: skip
    assert run_cli(["keys", "init", "--party", "sandwell-coord"])[0] == 0
    assert not any(plain.exists() for plain in plains)
    store = FileKeyStore(keys)
    assert desk_linkage_key(store, party="sandwell-coord") == linkage
    assert device_key(store, "desk:sandwell-coord", users) == device


def test_a_console_and_a_desk_sharing_the_home_s_keystore_each_move_their_own_file_in(
    tmp_path: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One host: the keys folder is both their keystore. Each keeps its own device-cookie key,
    the bytes of its own older file; neither takes the other's."""
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    console_users = tmp_path / "console" / "users.json"
    desk_users = tmp_path / "desk" / "sandwell-coord" / "users.json"
    console_old, desk_old = os.urandom(32), os.urandom(32)
    plains = [_plain(console_users.with_name("device-cookie.key"), console_old),
              _plain(desk_users.with_name("device-cookie.key"), desk_old)]  # fmt: skip
    for party in ("console", "sandwell-coord"):
        assert run_cli(["keys", "init", "--party", party])[0] == 0
    assert not any(plain.exists() for plain in plains)
    store = FileKeyStore(tmp_path / "keys")
    assert store.private_parties() == ["console", "sandwell-coord"]  # one keystore
    assert device_key(store, "console", console_users) == console_old
    assert device_key(store, "desk:sandwell-coord", desk_users) == desk_old


def test_init_with_dir_makes_fresh_keys_and_leaves_the_home_s_older_files(
    tmp_path: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key ceremony for production on a host with an old demo home: the production keystore
    must not get the demo's device-cookie keys, nor the demo lose them."""
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path / "demo"))
    console_users = tmp_path / "demo" / "console" / "users.json"
    desk_users = tmp_path / "demo" / "desk" / "sandwell-coord" / "users.json"
    console_old, desk_old = os.urandom(32), os.urandom(32)
    plains = {_plain(console_users.with_name("device-cookie.key"), console_old): console_old,
              _plain(desk_users.with_name("device-cookie.key"), desk_old): desk_old}  # fmt: skip
    ceremony = tmp_path / "ceremony"
    argv = ["keys", "init", "--party", "console", "--dir", str(ceremony / "console")]
    assert run_cli(argv)[0] == 0
    argv = ["--policies", str(REPO / "policies"), "--dir", str(ceremony / "all")]
    assert run_cli(["keys", "init", *argv])[0] == 0
    assert {plain: plain.read_bytes() for plain in plains} == plains
    made = [
        device_key(FileKeyStore(ceremony / "console"), "console", None),
        device_key(FileKeyStore(ceremony / "all" / "console"), "console", None),
        device_key(FileKeyStore(ceremony / "all" / "sandwell-coord"), "desk:sandwell-coord", None),
    ]
    assert not {console_old, desk_old} & set(made)


def test_the_kubernetes_upgrade_moves_the_pod_s_old_key_into_the_restored_keystore(
    tmp_path: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/deployment.md: the console's keystore restored from its Secret into keys/console,
    the old key copied out of the pod into old-console/, and keys init run with the restored
    keys as its keystore path and old-console/users.json as the console's accounts."""
    restored = tmp_path / "keys" / "console"
    assert run_cli(["keys", "init", "--party", "console", "--dir", str(restored)])[0] == 0
    (restored / _device("console")).unlink()  # a keystore from before 2026-12-06
    old = os.urandom(32)
    plain = _plain(tmp_path / "old-console" / "device-cookie.key", old)
    monkeypatch.setenv("ACCORD_KEYSTORE__PATH", str(tmp_path / "keys"))
    monkeypatch.setenv("ACCORD_CONSOLE__USERS_FILE", str(tmp_path / "old-console" / "users.json"))
    code, out, _ = run_cli(["keys", "init", "--party", "console"])
    assert code == 0
    assert f"keystore {restored}: 0 new keys for console" in out
    assert not plain.exists()
    assert device_key(FileKeyStore(restored), "console", None) == old


def test_a_party_new_to_a_keystore_its_desks_shared_a_secret_in_gets_its_own(
    tmp_path: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A keystore from 2026-12-05 with one desk-linkage.secret for every party whose keys it
    held: such a party takes it under its own name (its children keep their keys); a party
    enrolled there since gets a secret of its own."""
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    assert run_cli(["keys", "init", "--party", "sandwell-coord"])[0] == 0
    store = FileKeyStore(tmp_path / "keys")
    (tmp_path / "keys" / _linkage("sandwell-coord")).unlink()
    shared = store.local_secret("desk-linkage")  # as a desk of 2026-12-05 made it
    assert run_cli(["keys", "init", "--party", "sandwell-coord"])[0] == 0
    assert run_cli(["keys", "init", "--party", "cog-tipton"])[0] == 0
    assert desk_linkage_key(store, party="sandwell-coord") == shared
    assert (tmp_path / "keys" / _linkage("sandwell-coord")).is_file()
    assert desk_linkage_key(store, party="cog-tipton") != shared


def test_a_new_party_is_enrolled_beside_a_stray_older_file_with_a_secret_of_its_own(
    tmp_path: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain desk-linkage.key unlike the keystore's shared secret is the old parties'
    quarrel: their desks stop on it, not a new party's, which never reads either."""
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    for party in ("sandwell-coord", "cog-oldbury"):  # two parties, as on 2026-12-05
        assert run_cli(["keys", "init", "--party", party])[0] == 0
        (tmp_path / "keys" / _linkage(party)).unlink()
    store = FileKeyStore(tmp_path / "keys")
    shared = store.local_secret("desk-linkage")  # as a desk of 2026-12-05 made it
    _plain(tmp_path / "keys" / "desk-linkage.key", b"\x01" * 32)
    assert run_cli(["keys", "init", "--party", "cog-tipton"])[0] == 0
    assert desk_linkage_key(store, party="cog-tipton") not in {shared, b"\x01" * 32}
    # The old party's keys init goes on, saying why its secret was not made; its desk
    # refuses to start until the two copies are settled.
    for party in ("sandwell-coord", "cog-oldbury"):
        code, _, err = run_cli(["keys", "init", "--party", party])
        assert code == 0
        about = f"warning: {party}'s desk linkage secret was not made: "
        [warning] = [line for line in err.splitlines() if line.startswith(about)]
        assert "different secrets" in warning
        assert "Traceback" not in err
    with pytest.raises(KeyStoreError, match="different secrets"):
        desk_linkage_key(store, party="sandwell-coord")
    assert desk_linkage_key(store, party="cog-tipton") not in {shared, b"\x01" * 32}


def test_a_new_party_whose_first_keys_init_failed_after_its_keys_keeps_a_secret_of_its_own(
    tmp_path: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second run finds the party's keys there, but not as an old party: its own
    linkage secret was made before them, so it is not given the keystore's shared one."""
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    assert run_cli(["keys", "init", "--party", "sandwell-coord"])[0] == 0
    store = FileKeyStore(tmp_path / "keys")
    (tmp_path / "keys" / _linkage("sandwell-coord")).unlink()
    shared = store.local_secret("desk-linkage")
    import broker.cli._keys as keys_cli

    def broken(*_: object, **__: object) -> None:
        raise KeyStoreError("the disk filled up")

    with monkeypatch.context() as m:
        m.setattr(keys_cli, "_enrolment_secrets", broken)
        assert run_cli(["keys", "init", "--party", "cog-tipton"])[0] != 0
    assert "cog-tipton" in FileKeyStore(tmp_path / "keys").private_parties()  # a fresh read
    assert run_cli(["keys", "init", "--party", "cog-tipton"])[0] == 0
    assert desk_linkage_key(store, party="cog-tipton") != shared


def test_init_with_the_project_bundle_gives_every_party_keys(tmp_path: Path, run_cli: Run) -> None:
    import yaml

    policies = REPO / "policies"  # agreements, restrictions and scenarios beside parties.yaml
    parties = set(yaml.safe_load((policies / "parties.yaml").read_text())["parties"])
    code, out, _ = run_cli(
        ["keys", "init", "--policies", str(policies), "--dir", str(tmp_path / "k")]
    )
    assert code == 0
    assert f"{len(parties) + 3} keystores" in out
    got = set(FileKeyStore(tmp_path / "k" / "governance").parties())
    assert got == parties | {"worker", "console", "governance"}
    assert "smethwick-fsp" in got  # a suspended party has keys too
    # The console's and each recipient's (desk's) key for second factors, made with the
    # stores; an agency, which runs no desk, gets none.
    kinds = yaml.safe_load((policies / "parties.yaml").read_text())["parties"]
    for owner in [*parties, "console"]:
        app = "console" if owner == "console" else f"desk:{owner}"
        desk = owner == "console" or kinds[owner]["kind"] != "agency"
        assert (tmp_path / "k" / owner / "users-totp.secret").is_file() is desk
        assert (tmp_path / "k" / owner / _device(app)).is_file() is desk
    assert not list((tmp_path / "k" / "wmp").glob("*.secret"))
    assert (tmp_path / "k" / "sandwell-coord" / _linkage("sandwell-coord")).is_file()
    assert not (tmp_path / "k" / "worker" / "users-totp.secret").exists()


def test_init_with_x25519(bundle: Path, home: Path, run_cli: Run) -> None:
    code, _, _ = run_cli(["keys", "init", "--policies", str(bundle), "--kem", "x25519"])
    assert code == 0
    store = FileKeyStore(home / "keys" / "worker")
    assert store.current_encryption_key("wmp").alg.value == "x25519"


def test_list_json_rotate_and_revoke(bundle: Path, home: Path, run_cli: Run) -> None:
    run_cli(["keys", "init", "--policies", str(bundle)])
    code, out, _ = run_cli(["keys", "list", "--party", "wmp", "--json"])
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert {r["purpose"] for r in rows} == {"sign", "encrypt"}
    assert all(r["status"] == "active" for r in rows)

    code, out, _ = run_cli(["keys", "rotate", "wmp", "--grace-days", "1"])
    assert code == 0
    assert "rotated wmp" in out
    code, out, _ = run_cli(["keys", "list", "--party", "wmp", "--json"])
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 4
    assert sum(r["not_after"] is not None for r in rows) == 2

    victim = rows[0]["key_id"]
    code, out, _ = run_cli(["keys", "revoke", victim])  # in the master directory
    assert code == 0
    assert f"revoked {victim}" in out
    info = FileKeyStore(home / "keys" / "governance").public_key(victim)
    assert info is not None
    assert info.status is KeyStatus.REVOKED

    code, out, _ = run_cli(["keys", "retire", rows[1]["key_id"]])
    assert code == 0
    code, out, _ = run_cli(["keys", "list"])
    assert "revoked" in out
    assert "retired" in out


def test_list_table_has_a_header(bundle: Path, run_cli: Run) -> None:
    run_cli(["keys", "init", "--policies", str(bundle)])
    code, out, _ = run_cli(["keys", "list"])
    assert code == 0
    assert out.splitlines()[0].split() == [
        "PARTY",
        "PURPOSE",
        "ALG",
        "KEY_ID",
        "STATUS",
        "IN_USE",
        "NOT_AFTER",
    ]


def test_after_keys_rotate_the_old_key_signs_until_a_directory_naming_the_new_one_is_imported(
    bundle: Path, home: Path, tmp_path: Path, run_cli: Run
) -> None:
    """The reviewer's case: 'accord keys rotate wmp', then what wmp seals to the worker must
    open for a worker holding the last signed directory (else it is quarantined while wmp
    holds a receipt). Once the directory naming the new keys is imported, they sign."""
    from broker.envelope import Opener, Sealer

    run_cli(["keys", "init", "--policies", str(bundle)])
    keys = home / "keys"
    code, out, _ = run_cli(["keys", "rotate", "wmp"])
    assert code == 0
    assert "goes on signing until the signed directory naming the new keys is imported" in out

    def signing() -> str:
        rows = [
            json.loads(line)
            for line in run_cli(["keys", "list", "--party", "wmp", "--json"])[1].splitlines()
        ]
        [row] = [r for r in rows if r["in_use"] == "signing"]
        return str(row["key_id"])

    old = signing()
    assert FileKeyStore(keys / "wmp").public_key(old).not_after is not None  # type: ignore[union-attr]

    def sent_and_opened(event_id: str) -> str:
        record = Sealer("wmp", FileKeyStore(keys / "wmp")).seal(
            b"{}", event_id=event_id, recipient="worker", schema="contact-event.v1",
            topic="accord.ingress.wmp",
        )  # fmt: skip
        opener = Opener("worker", FileKeyStore(keys / "worker"))
        return opener.open(record.value, record.dek_bundle).signer_key_id

    assert sent_and_opened("e-1") == old
    exported, directory = tmp_path / "wmp.json", tmp_path / "directory.json"
    assert run_cli(["keys", "export", "--party", "wmp", "--out", str(exported)])[0] == 0
    argv = ["keys", "sign-directory", str(exported), "--out", str(directory)]
    assert run_cli(argv)[0] == 0
    for principal in ("worker", "wmp"):
        argv = ["keys", "import", str(directory), "--dir", str(keys / principal)]
        assert run_cli(argv)[0] == 0
    new = signing()
    assert new != old
    assert sent_and_opened("e-2") == new


def test_rotating_after_a_revocation_says_the_new_key_signs_at_once(
    bundle: Path, home: Path, run_cli: Run
) -> None:
    """A stolen keystore: the old keys are revoked, then rotated. No grace is given to a
    revoked key and the new signing key signs at once, so rotate says so, and that the
    worker refuses it (key-rejected) until it imports a directory naming it."""
    from broker.envelope import Opener, Sealer
    from broker.errors import KeyRejected

    run_cli(["keys", "init", "--policies", str(bundle)])
    keys = home / "keys"
    old = FileKeyStore(keys / "wmp").keys("wmp")
    for key in old:
        assert run_cli(["keys", "revoke", key.key_id, "--dir", str(keys / "wmp")])[0] == 0
    code, out, err = run_cli(["keys", "rotate", "wmp"])
    assert code == 0
    for key in old:
        assert f"old {key.purpose.value} key {key.key_id} is revoked already" in out
    assert "expire" not in out
    store = FileKeyStore(keys / "wmp")
    new = store.current_signing_key("wmp").info.key_id
    assert new not in {k.key_id for k in old}
    assert f"new signing key {new} signs now: no old signing key is live" in out
    assert "goes on signing" not in out
    assert "quarantined key-rejected (send it again after that import)" in err
    assert "--unsigned wmp" in err
    rows = [
        json.loads(line)
        for line in run_cli(["keys", "list", "--party", "wmp", "--json"])[1].splitlines()
    ]
    assert [r["key_id"] for r in rows if r["in_use"] == "signing"] == [new]
    record = Sealer("wmp", store).seal(
        b"{}", event_id="e-1", recipient="worker", schema="contact-event.v1",
        topic="accord.ingress.wmp",
    )  # fmt: skip
    with pytest.raises(KeyRejected):  # what the worker quarantines as key-rejected
        Opener("worker", FileKeyStore(keys / "worker")).open(record.value, record.dek_bundle)


@pytest.mark.parametrize(
    ("argv", "expected_code", "fragment"),
    [
        (["keys", "revoke", "00"], 1, "no key with id"),
        (["keys", "rotate", "nobody"], 2, "no keystore for nobody"),
        (["keys", "rotate", "wmp", "--purpose", "other"], 2, "--purpose"),
        (["keys", "list", "--party", "nobody"], 2, "no keystore for nobody"),
    ],
)
def test_mistakes_are_one_line_errors(
    bundle: Path,
    run_cli: Run,
    argv: list[str],
    expected_code: int,
    fragment: str,
) -> None:
    run_cli(["keys", "init", "--policies", str(bundle)])
    code, _, err = run_cli(argv)
    assert fragment in _one_line_error(code, err, expected_code)


def test_commands_before_init_say_so(run_cli: Run) -> None:
    code, _, err = run_cli(["keys", "list"])
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
    tmp_path: Path, run_cli: Run, content: str | None, fragment: str
) -> None:
    d = tmp_path / "p"
    d.mkdir()
    if content is not None:
        (d / "parties.yaml").write_text(content)
    code, _, err = run_cli(["keys", "init", "--policies", str(d)])
    assert fragment in _one_line_error(code, err, 2)


def test_missing_policy_dir_is_a_usage_error(tmp_path: Path, run_cli: Run) -> None:
    code, _, err = run_cli(["keys", "init", "--policies", str(tmp_path / "none")])
    assert "policy bundle not found" in _one_line_error(code, err, 2)


def test_passphrase_from_settings_and_wrong_passphrase(
    bundle: Path, home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCORD_KEYSTORE__PASSPHRASE", "synthetic-passphrase")
    code, _, _ = run_cli(["keys", "init", "--policies", str(bundle)])
    assert code == 0
    meta = json.loads((home / "keys" / "wmp" / "keystore.json").read_text())
    assert meta["protection"] == "scrypt"
    code, _, _ = run_cli(["keys", "list"])
    assert code == 0
    monkeypatch.setenv("ACCORD_KEYSTORE__PASSPHRASE", "not-it")
    code, _, err = run_cli(["keys", "list"])
    line = _one_line_error(code, err, 1)
    assert "wrong passphrase" in line
    assert "not-it" not in line


def test_separate_organisations_exchange_public_keys_through_a_signed_directory(
    tmp_path: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """init per organisation, export, sign-directory, import: each ends up with everyone's
    public keys and only its own private ones; a tampered copy is one line and changes nothing."""
    monkeypatch.chdir(tmp_path)  # no policy bundle here: the parties are not checked
    dirs = {p: tmp_path / p for p in ("wmp", "hub-a", "governance")}
    for party, d in dirs.items():
        assert run_cli(["keys", "init", "--party", party, "--dir", str(d)])[0] == 0
    exported = []
    for party in ("wmp", "hub-a"):
        out_file = tmp_path / f"{party}.entries.json"
        cmd = ["keys", "export", "--party", party, "--dir", str(dirs[party]), "--out"]
        assert run_cli([*cmd, str(out_file)])[0] == 0
        exported.append(str(out_file))
    signed = tmp_path / "directory.json"
    code, out, _ = run_cli(
        [
            "keys",
            "sign-directory",
            *exported,
            "--out",
            str(signed),
            "--dir",
            str(dirs["governance"]),
            "--no-party-check",
        ],
    )
    assert code == 0
    anchor = FileKeyStore(dirs["governance"]).current_signing_key("governance").info.key_id
    assert anchor in out

    # The first import needs the governance key id, given on purpose.
    code, _, err = run_cli(["keys", "import", str(signed), "--dir", str(dirs["wmp"])])
    assert "--trust" in _one_line_error(code, err, 1)

    cmd = ["keys", "import", "--dir", str(dirs["wmp"]), "--trust", anchor]
    keys = json.loads(signed.read_text())["keys"]
    signer = next(i for i, k in enumerate(keys) if k["key_id"] == anchor)
    other = next(i for i, k in enumerate(keys) if k["key_id"] != anchor)
    # The directory's keys are in key id order, which is random: the governance key (the one
    # trusted) and another are each tampered with, whichever comes first.
    for n, (index, field, value, says) in enumerate([
        (other, "public", keys[signer]["public"], "does not match its id"),
        (other, "status", "retired", "does not verify"),
        (signer, "status", "retired", "does not verify"),
    ]):  # fmt: skip
        tampered = tmp_path / f"tampered-{n}.json"
        doc = json.loads(signed.read_text())
        doc["keys"][index][field] = value
        tampered.write_text(json.dumps(doc))
        code, _, err = run_cli([*cmd, str(tampered)])
        assert says in _one_line_error(code, err, 1)
    assert FileKeyStore(dirs["wmp"]).parties() == ["wmp"]  # nothing taken from it

    for party in ("wmp", "hub-a"):
        code, _, _ = run_cli(["keys", "import", "--dir", str(dirs[party]), "--trust", anchor,
                           str(signed)])  # fmt: skip
        assert code == 0
        store = FileKeyStore(dirs[party])
        assert store.parties() == ["governance", "hub-a", "wmp"]
        assert store.private_parties() == [party]
    # Trust is pinned now: later directories import without --trust.
    code, _, _ = run_cli(["keys", "import", "--dir", str(dirs["wmp"]), str(signed)])
    assert code == 0


def test_a_first_import_into_an_empty_folder_makes_a_verifiers_keystore_of_public_keys(
    tmp_path: Path, run_cli: Run
) -> None:
    """What a deployment gives the audit indexer: the signed directory and no private key;
    a directory that fails its checks leaves nothing behind."""
    gov, wmp = tmp_path / "governance", tmp_path / "wmp"
    for party, d in (("governance", gov), ("wmp", wmp)):
        assert run_cli(["keys", "init", "--party", party, "--dir", str(d)])[0] == 0
    entries = tmp_path / "wmp.entries.json"
    cmd = ["keys", "export", "--party", "wmp", "--dir", str(wmp), "--out", str(entries)]
    assert run_cli(cmd)[0] == 0
    signed = tmp_path / "directory.json"
    cmd = ["keys", "sign-directory", str(entries), "--out", str(signed), "--dir", str(gov)]
    assert run_cli(cmd)[0] == 0
    anchor = FileKeyStore(gov).current_signing_key("governance").info.key_id

    tampered = tmp_path / "tampered.json"
    doc = json.loads(signed.read_text())
    doc["keys"][0]["status"] = "retired"
    tampered.write_text(json.dumps(doc))
    indexer = tmp_path / "indexer"
    code, _, err = run_cli(["keys", "import", "--dir", str(indexer), "--trust", anchor,
                         str(tampered)])  # fmt: skip
    _one_line_error(code, err, 1)
    assert not indexer.exists()

    code, out, _ = run_cli(["keys", "import", "--dir", str(indexer), "--trust", anchor,
                         str(signed)])  # fmt: skip
    assert code == 0
    assert "public keys only" in out
    store = FileKeyStore(indexer)
    assert store.parties() == ["governance", "wmp"]
    assert store.private_parties() == []
    # Without --trust an empty folder is still no keystore: nothing is made by accident.
    code, _, err = run_cli(["keys", "import", "--dir", str(tmp_path / "x"), str(signed)])
    assert "check --dir" in _one_line_error(code, err, 2)


def test_the_linkage_key_is_copied_into_a_keystore_with_a_passphrase_of_its_own(
    tmp_path: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deployment protects the worker's and the console's keystores with different
    passphrases; the copy opens each with its own."""
    worker, console = tmp_path / "worker", tmp_path / "console"
    (tmp_path / "console.pass").write_text("console-passphrase\n")
    monkeypatch.setenv("ACCORD_KEYSTORE__PASSPHRASE", "console-passphrase")
    assert run_cli(["keys", "init", "--party", "console", "--dir", str(console)])[0] == 0
    monkeypatch.setenv("ACCORD_KEYSTORE__PASSPHRASE", "worker-passphrase")
    assert run_cli(["keys", "init", "--party", "worker", "--dir", str(worker)])[0] == 0
    assert run_cli(["keys", "linkage", "create", "--dir", str(worker)])[0] == 0
    cmd = ["keys", "linkage", "copy", "--dir", str(worker), "--to", str(console)]
    code, _, err = run_cli(cmd)  # the worker's passphrase does not open the console's
    assert _one_line_error(code, err, 1) == (
        f"accord: error: wrong passphrase for the keystore at {console}: give its own "
        "passphrase with --to-passphrase-file FILE"
    )
    code, out, _ = run_cli([*cmd, "--to-passphrase-file", str(tmp_path / "console.pass")])
    assert code == 0, out
    from pydantic import SecretStr

    copied = FileKeyStore(console, SecretStr("console-passphrase")).linkage_key()
    assert copied == FileKeyStore(worker, SecretStr("worker-passphrase")).linkage_key()


def test_keys_are_rotated_and_the_linkage_key_copied_only_into_their_owners_keystores(
    tmp_path: Path, run_cli: Run
) -> None:
    """Rotating swbh in the worker's keystore made swbh private keys the worker held, and a
    directory listing them would have had swbh's records sealed to them; the linkage key,
    which links every child's records, went into the police's keystore."""
    root = tmp_path / "k"
    assert (
        run_cli(["keys", "init", "--policies", str(REPO / "policies"), "--dir", str(root)])[0] == 0
    )
    before = FileKeyStore(root / "worker").keys("swbh")
    code, _, err = run_cli(["keys", "rotate", "swbh", "--dir", str(root / "worker")])
    assert "holds no private key of swbh" in _one_line_error(code, err, 1)
    assert FileKeyStore(root / "worker").keys("swbh") == before
    code, _, err = run_cli(["keys", "rotate", "governance", "--dir", str(root / "wmp")])
    _one_line_error(code, err, 1)
    cmd = ["keys", "linkage", "copy", "--dir", str(root / "worker"), "--to", str(root / "wmp")]
    code, _, err = run_cli(cmd)
    assert "is not the console's keystore (it holds wmp's)" in _one_line_error(code, err, 2)


def test_a_bad_party_id_leaves_no_empty_keystore_behind(tmp_path: Path, run_cli: Run) -> None:
    code, _, err = run_cli(["keys", "init", "--party", "Bad Id", "--dir", str(tmp_path / "k")])
    assert "party ids use letters" in _one_line_error(code, err, 2)
    assert not (tmp_path / "k").exists()


@pytest.mark.parametrize("how", [["--party", "wmp"], ["--policies", "BUNDLE"]])
def test_keys_are_made_only_under_a_passphrase_unless_unencrypted_ones_are_asked_for(
    how: list[str], bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    run_cli: Run,
) -> None:  # fmt: skip
    """Secure by default: no passphrase, no keys. ACCORD_KEYSTORE__PROTECTION=none is the
    explicit opt-out, and it is warned about every time."""
    argv = ["keys", "init", *[str(bundle) if a == "BUNDLE" else a for a in how]]
    monkeypatch.delenv("ACCORD_KEYSTORE__PROTECTION", raising=False)
    code, _, err = run_cli([*argv, "--dir", str(tmp_path / "refused")])
    assert "no keystore passphrase: set ACCORD_KEYSTORE__PASSPHRASE" in _one_line_error(
        code, err, 2
    )
    assert not (tmp_path / "refused").exists()

    monkeypatch.setenv("ACCORD_KEYSTORE__PROTECTION", "none")
    code, _, err = run_cli([*argv, "--dir", str(tmp_path / "plain")])
    assert code == 0
    assert err.strip() == (
        "warning: private keys stored unencrypted (ACCORD_KEYSTORE__PROTECTION=none), for "
        "synthetic data only: 'accord keys protect' puts them under "
        "ACCORD_KEYSTORE__PASSPHRASE (docs/operations.md, Keys)"
    )
    monkeypatch.delenv("ACCORD_KEYSTORE__PROTECTION")
    monkeypatch.setenv("ACCORD_KEYSTORE__PASSPHRASE", "correct horse battery staple")
    code, _, err = run_cli([*argv, "--dir", str(tmp_path / "sealed")])
    assert (code, err) == (0, "")
    metas = list((tmp_path / "sealed").glob("**/keystore.json"))
    assert metas
    assert all(json.loads(m.read_text())["protection"] == "scrypt" for m in metas)


def test_without_a_passphrase_no_command_opens_a_keystore(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    run_cli: Run,
) -> None:  # fmt: skip
    """A keystore made unencrypted is not opened either unless the opt-out is set where it
    is opened: a deployment does not inherit a test's or a demo's setting by accident."""
    assert run_cli(["keys", "init", "--policies", str(bundle)])[0] == 0
    assert run_cli(["keys", "list"])[0] == 0
    monkeypatch.delenv("ACCORD_KEYSTORE__PROTECTION")
    code, _, err = run_cli(["keys", "list"])
    assert "no keystore passphrase" in _one_line_error(code, err, 2)


def test_keys_protect_encrypts_an_unencrypted_keystore_in_place(
    bundle: Path, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    run_cli: Run,
) -> None:  # fmt: skip
    """Every store under the folder is put under the passphrase, keeping its keys; again, it
    is a no-op; with another passphrase, or none, it is a one-line error."""
    assert run_cli(["keys", "init", "--policies", str(bundle)])[0] == 0
    root = home / "keys"
    before = {p.name: FileKeyStore(p).keys() for p in root.iterdir() if p.is_dir()}
    monkeypatch.delenv("ACCORD_KEYSTORE__PROTECTION")
    code, _, err = run_cli(["keys", "protect"])
    assert "ACCORD_KEYSTORE__PASSPHRASE" in _one_line_error(code, err, 2)

    monkeypatch.setenv("ACCORD_KEYSTORE__PASSPHRASE", "correct horse battery staple")
    code, out, err = run_cli(["keys", "protect"])
    assert (code, err) == (0, "")
    assert out.count("now encrypted under the passphrase") == len(before)
    for name, keys in before.items():
        store = FileKeyStore(root / name, SecretStr("correct horse battery staple"))
        assert store.protected
        assert store.keys() == keys
        for held in (root / name / "private").glob("*.key"):
            assert json.loads(held.read_text())["protection"] == "aes-256-gcm"
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted(before)
    assert not list(home.glob(".keys*"))
    assert not list(root.glob(".*.protecting"))
    assert not list(root.glob(".*.unprotected"))
    # The stores still work together: the directory they import is signed as before.
    assert run_cli(["keys", "list"])[0] == 0

    code, out, _ = run_cli(["keys", "protect"])
    assert code == 0
    assert "protected already" in out
    monkeypatch.setenv("ACCORD_KEYSTORE__PASSPHRASE", "another")
    code, _, err = run_cli(["keys", "protect"])
    assert "wrong passphrase" in _one_line_error(code, err, 1)


def test_a_service_on_an_unprotected_keystore_logs_so_and_on_a_protected_one_does_not(
    tmp_path: Path,
) -> None:
    import structlog.testing
    from pydantic import SecretStr

    from broker.keys import warn_if_unprotected

    plain = FileKeyStore(tmp_path / "plain", create=True)
    sealed = FileKeyStore(tmp_path / "sealed", SecretStr("pw"), create=True, scrypt_n=2**10)
    with structlog.testing.capture_logs() as logs:
        warn_if_unprotected(plain)
        warn_if_unprotected(sealed)
    assert [(e["event"], e["keystore"]) for e in logs] == [
        ("keystore_unprotected", str(tmp_path / "plain"))
    ]


def test_keys_protect_from_inside_the_keystore_folder_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Run
) -> None:
    """`--dir .` named a store with no name to build its sibling folders from (a traceback)."""
    assert run_cli(["keys", "init", "--party", "wmp", "--dir", str(tmp_path / "wmp")])[0] == 0
    monkeypatch.chdir(tmp_path / "wmp")
    monkeypatch.setenv("ACCORD_KEYSTORE__PASSPHRASE", "correct horse battery staple")
    code, out, err = run_cli(["keys", "protect", "--dir", "."])
    assert (code, err) == (0, "")
    assert "now encrypted" in out
    assert json.loads((tmp_path / "wmp" / "keystore.json").read_text())["protection"] == "scrypt"


def test_revoking_another_partys_key_outside_the_governance_keystore_is_refused(
    bundle: Path,
    home: Path,
    tmp_path: Path,
    run_cli: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Done in wmp's keystore, the next directory imported there would silently undo it.
    The IG officer revokes it in the governance keystore instead (a compromised or
    unreachable organisation's key): the next signed directory carries it to everyone, the
    owner's keystore included, and the owner's own export cannot undo it."""
    monkeypatch.setenv("ACCORD_POLICIES", str(bundle))  # the bundle the parties are checked in
    run_cli(["keys", "init", "--policies", str(bundle)])
    keys = home / "keys"
    victim = FileKeyStore(keys / "hub-a").current_signing_key("hub-a").info.key_id
    for verb in ("revoke", "retire"):
        code, _, err = run_cli(["keys", verb, victim, "--dir", str(keys / "wmp")])
        line = _one_line_error(code, err, 2)
        assert f"key {victim} is hub-a's" in line
        assert f"{verb} it in hub-a's own keystore" in line
        assert "governance keystore" in line
    assert FileKeyStore(keys / "wmp").public_key(victim).status is KeyStatus.ACTIVE  # type: ignore[union-attr]

    code, out, _ = run_cli(["keys", "revoke", victim, "--dir", str(keys / "governance")])
    assert code == 0
    assert out.startswith(f"revoked {victim} (hub-a, sign) in keystore {keys / 'governance'} ")
    exported, directory = tmp_path / "hub-a.json", tmp_path / "directory.json"
    argv = ["keys", "export", "--party", "hub-a", "--dir", str(keys / "hub-a"), "--out"]
    assert run_cli([*argv, str(exported)])[0] == 0
    # Signed by the revoked key, which proves nothing: taken on the officer's own check.
    argv = ["keys", "sign-directory", str(exported), "--out", str(directory), "--unsigned", "hub-a"]
    assert run_cli([*argv, "--dir", str(keys / "governance")])[0] == 0
    for principal in ("wmp", "hub-a"):
        argv = ["keys", "import", str(directory), "--dir", str(keys / principal)]
        assert run_cli(argv)[0] == 0
        info = FileKeyStore(keys / principal).public_key(victim)
        assert info is not None
        assert info.status is KeyStatus.REVOKED


def test_init_party_refuses_a_party_the_bundle_given_does_not_know(
    bundle: Path, tmp_path: Path, run_cli: Run
) -> None:
    """A typo with --policies would make keys for a party no directory is meant to list; the
    broker's own principals are in no bundle, and are made as before."""
    for party, hint in (("hub-b", ": did you mean hub-a?"), ("nosuchparty", "")):
        argv = ["keys", "init", "--party", party, "--dir", str(tmp_path / party)]
        code, _, err = run_cli([*argv, "--policies", str(bundle)])
        line = _one_line_error(code, err, 2)
        assert line == f"accord: error: --party: {party} is no party of the bundle {bundle}{hint}"
        assert not (tmp_path / party).exists()
    argv = ["keys", "init", "--party", "worker", "--dir", str(tmp_path / "worker")]
    assert run_cli([*argv, "--policies", str(bundle)])[0] == 0


def test_rotating_the_worker_with_less_grace_than_its_deliveries_live_is_refused_unless_forced(
    tmp_path: Path, run_cli: Run
) -> None:
    """The worker's old signing key must outlive what it signed on the delivery topics
    (~37 days) plus the staged rotation, and no later rotation extends it: below 45 days the
    rotation is refused in one line, changing nothing; with --force it warns what to do."""
    from broker.envelope import KeyPurpose
    from broker.keys import FileKeyStore

    store = tmp_path / "worker"
    assert run_cli(["keys", "init", "--party", "worker", "--dir", str(store)])[0] == 0
    before = FileKeyStore(store).keys("worker")
    code, _, err = run_cli(["keys", "rotate", "worker", "--dir", str(store)])
    line = _one_line_error(code, err, 2)
    assert "refusing to rotate the worker's signing key with 7 days' grace" in line
    assert "--grace-days 45 or more" in line
    assert FileKeyStore(store).keys("worker") == before
    cmd = ["keys", "rotate", "worker", "--dir", str(store), "--grace-days", "45"]
    code, _, err = run_cli(cmd)
    assert (code, err) == (0, "")
    [original] = [k for k in before if k.purpose is KeyPurpose.SIGN]
    rotated_out = FileKeyStore(store).public_key(original.key_id)
    assert rotated_out is not None
    assert rotated_out.not_after is not None
    assert rotated_out.not_after - rotated_out.created_at >= timedelta(days=45)
    cmd = ["keys", "rotate", "worker", "--dir", str(store), "--grace-days", "7", "--force"]
    code, out, err = run_cli(cmd)
    assert code == 0, err
    assert "rotated worker" in out
    assert "warning: the worker's old signing key expires in 7 days, and nothing extends" in err
    assert "every recipient group has read past them" in err
    cmd = ["keys", "rotate", "worker", "--dir", str(store), "--purpose", "encrypt"]
    code, _, err = run_cli(cmd)
    assert (code, err) == (0, "")  # its encryption key needs no such grace


def test_keys_commands_that_change_a_keystore_name_it(
    bundle: Path, home: Path, run_cli: Run
) -> None:
    """The custodian's case: with ACCORD_HOME and no --dir, revoking wmp's key changes the
    governance keystore, and the message says so; rotate names the party's own."""
    run_cli(["keys", "init", "--policies", str(bundle)])
    keys = home / "keys"
    victim = FileKeyStore(keys / "wmp").current_encryption_key("wmp").key_id
    code, out, _ = run_cli(["keys", "revoke", victim])
    assert code == 0
    assert f"revoked {victim} (wmp, encrypt) in keystore {keys / 'governance'}" in out
    assert "the governance keystore" in out
    assert FileKeyStore(keys / "governance").public_key(victim).status is KeyStatus.REVOKED  # type: ignore[union-attr]
    code, out, _ = run_cli(["keys", "rotate", "hub-a"])
    assert code == 0
    assert f"rotated hub-a in keystore {keys / 'hub-a'}:" in out


def test_a_dir_that_holds_no_keystore_is_refused_naming_dir(tmp_path: Path, run_cli: Run) -> None:
    """--dir given on purpose: the advice is to check it, not ACCORD_KEYSTORE__PATH."""
    empty = tmp_path / "nowhere"
    for argv in (
        ["keys", "revoke", "383af4d0e5fa74cf554b3a4f22577e3e", "--dir", str(empty)],
        ["keys", "list", "--dir", str(empty)],
        ["keys", "export", "--party", "wmp", "--dir", str(empty)],
    ):
        code, _, err = run_cli(argv)
        line = _one_line_error(code, err, 2)
        assert f"no keystore at {empty}: check --dir" in line
        assert "ACCORD_KEYSTORE__PATH" not in line


def test_after_rotating_governance_the_key_sign_directory_uses_is_marked_in_use(
    bundle: Path, home: Path, tmp_path: Path, run_cli: Run
) -> None:
    """sign-directory signs with the oldest live governance key during the grace: list marks
    that one, and rotate says so (not 'the new keys sign once ... imported here')."""
    run_cli(["keys", "init", "--policies", str(bundle)])
    keys = home / "keys"
    old = FileKeyStore(keys / "governance").current_signing_key("governance").info.key_id
    code, out, _ = run_cli(["keys", "rotate", "governance", "--purpose", "sign"])
    assert code == 0
    assert f"governance key {old} goes on signing directories for 7 days" in out
    assert "--trust NEW_KEY_ID" in out
    assert "the new keys sign once" not in out
    argv = ["keys", "list", "--party", "governance", "--dir", str(keys / "governance"), "--json"]
    rows = [json.loads(line) for line in run_cli(argv)[1].splitlines()]
    rows = [r for r in rows if r["purpose"] == "sign" and r["status"] == "active"]
    assert len(rows) == 2
    assert [r["key_id"] for r in rows if r["in_use"] == "signing"] == [old]
    directory, exported = tmp_path / "directory.json", tmp_path / "wmp.json"
    assert run_cli(["keys", "export", "--party", "wmp", "--out", str(exported)])[0] == 0
    argv = ["keys", "sign-directory", str(exported), "--out", str(directory)]
    code, out, _ = run_cli(argv)
    assert code == 0
    assert json.loads(directory.read_text())["signature"]["key_id"] == old
    assert f"from keystore {keys / 'governance'}" in out
