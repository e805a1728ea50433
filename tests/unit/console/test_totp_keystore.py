"""Only enrolment makes a keystore's users-totp secret; a server checks at its start that
every sealed second factor of its users file opens, and never seals one under a key it made."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyotp
import pytest
from argon2 import PasswordHasher

from broker.console import TotpBox, UserFile
from broker.errors import ConfigError, SecondFactorUnreadable
from broker.keys import FileKeyStore

FAST = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
PW = "a long enough secret"
NOW = datetime(2026, 12, 1, 9, 0, 10, tzinfo=UTC)


def store(path: Path) -> FileKeyStore:
    return FileKeyStore(path, create=True)


def users_of(path: Path, keys: FileKeyStore, *, create: bool, owner: str = "console") -> UserFile:
    return UserFile(path, box=TotpBox.from_keystore(keys, owner, create=create), hasher=FAST)


def legacy_file(path: Path, *names: str) -> dict[str, str]:
    """A users file as an Accord from before sealing left it: each secret plain."""
    secrets = {name: pyotp.random_base32() for name in names}
    users = {
        name: {
            "hash": FAST.hash(PW),
            "created_at": "2026-01-05T10:00:00+00:00",
            "totp": {"secret": secret, "enrolled_at": "2026-01-05T10:00:00+00:00"},
        }
        for name, secret in secrets.items()
    }
    path.write_text(json.dumps({"format": 1, "owner": "console", "users": users}))
    return secrets


def test_a_box_opened_without_create_makes_no_secret_and_has_no_key(tmp_path: Path) -> None:
    keys = store(tmp_path / "keys")
    box = TotpBox.from_keystore(keys, "console", create=False)
    assert not box.keyed
    assert not (keys.path / "users-totp.secret").exists()
    with pytest.raises(ConfigError, match=f"the keystore at {keys.path} has no users-totp"):
        box.seal("ig.jo", pyotp.random_base32())
    made = TotpBox.from_keystore(keys, "console", create=True)
    assert made.keyed
    assert (keys.path / "users-totp.secret").is_file()
    assert TotpBox.from_keystore(keys, "console", create=False).keyed  # found, not remade


def test_a_plain_secret_stays_plain_when_the_keystore_has_no_key_to_seal_it(
    tmp_path: Path,
) -> None:
    """The pod restart: a key made in memory and sealed under would be lost at the next start,
    and every officer's second factor with it. With no key, the write leaves it plain."""
    path = tmp_path / "users.json"
    secrets = legacy_file(path, "ig.jo")
    keys = store(tmp_path / "keys")
    users = users_of(path, keys, create=False)
    assert users.authenticate("ig.jo", PW, pyotp.TOTP(secrets["ig.jo"]).at(NOW), now=NOW)
    factor = json.loads(path.read_text())["users"]["ig.jo"]["totp"]
    assert factor["secret"] == secrets["ig.jo"]  # the sign-in wrote the file, but not sealed
    assert "secret_sealed" not in factor
    assert not (keys.path / "users-totp.secret").exists()
    # Once the key exists (keys init), the next write seals it under that key.
    users = users_of(path, keys, create=True)
    users.add("ig.sam", PW)
    factor = json.loads(path.read_text())["users"]["ig.jo"]["totp"]
    assert "secret_sealed" in factor
    assert "secret" not in factor
    assert users_of(path, keys, create=False).totp_enrolment("ig.jo") is not None


def test_the_start_refuses_sealed_secrets_when_the_keystore_has_no_key(tmp_path: Path) -> None:
    """A keystore restored from before the secret existed, or an archive without it."""
    path = tmp_path / "users.json"
    sealing = users_of(path, store(tmp_path / "sealed-with"), create=True)
    sealing.add("ig.jo", PW, totp=True)
    sealing.add("ig.sam", PW, totp=True)
    sealing.add("ig.kim", PW)
    secret = sealing.totp_enrolment("ig.jo")
    assert secret is not None
    bare = store(tmp_path / "restored")
    with pytest.raises(ConfigError) as refused:
        users_of(path, bare, create=False).check_second_factors()
    message = str(refused.value)
    assert message.startswith(f"{path}: the second factors of ig.jo, ig.sam are sealed")
    assert f"the keystore at {bare.path} has no users-totp secret" in message
    assert "restore the keystore that sealed them" in message
    assert "'accord console add-user NAME --reset'" in message
    assert "\n" not in message
    assert secret.secret not in message
    assert not (bare.path / "users-totp.secret").exists()  # and none was made


def test_the_start_names_each_account_whose_secret_does_not_open(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    old = users_of(path, store(tmp_path / "old"), create=True)
    old.add("ig.jo", PW, totp=True)
    old.add("ig.sam", PW, totp=True)
    new_keys = store(tmp_path / "new")
    new = users_of(path, new_keys, create=True)
    new.add("ig.kim", PW, totp=True)  # re-enrolled under the new keystore: this one opens
    new.add("ig.jo", PW, replace=True, totp=True)
    with pytest.raises(ConfigError) as refused:
        users_of(path, new_keys, create=False).check_second_factors()
    message = str(refused.value)
    assert message.startswith(f"{path}: the second factors of ig.sam are sealed")
    assert "ig.kim" not in message
    assert "ig.jo" not in message
    assert f"the keystore at {new_keys.path} does not open them" in message


def test_the_start_refuses_plain_secrets_it_has_no_key_to_seal(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    legacy_file(path, "ig.jo", "ig.sam")
    keys = store(tmp_path / "keys")
    with pytest.raises(ConfigError) as refused:
        users_of(path, keys, create=False).check_second_factors()
    message = str(refused.value)
    assert message.startswith(f"{path}: 2 second factors from an older Accord are not sealed")
    assert "'accord keys init --party console'" in message
    assert not (keys.path / "users-totp.secret").exists()
    assert "secret_sealed" not in path.read_text()  # nothing sealed under a key made now


def test_a_desk_is_told_its_own_commands(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    owner = "desk:cog-tipton"
    users_of(path, store(tmp_path / "a"), create=True, owner=owner).add("sam.x", PW, totp=True)
    bare = users_of(path, store(tmp_path / "b"), create=False, owner=owner)
    with pytest.raises(ConfigError, match="'accord desk add-user --as cog-tipton NAME --reset'"):
        bare.check_second_factors()
    data = json.loads(path.read_text())
    data["users"]["sam.x"]["totp"] = {"secret": pyotp.random_base32()}
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="'accord keys init --party cog-tipton'"):
        bare.check_second_factors()


def test_the_start_accepts_what_it_can_serve(tmp_path: Path) -> None:
    keys = store(tmp_path / "keys")
    users_of(tmp_path / "none.json", keys, create=False).check_second_factors()  # no file yet
    no_factors = users_of(tmp_path / "no-factors.json", keys, create=False)
    no_factors.add("ig.jo", PW)  # password only: nothing to seal, so no key needed
    no_factors.check_second_factors()
    sealed = users_of(tmp_path / "sealed.json", keys, create=True)
    sealed.add("ig.jo", PW, totp=True)
    users_of(sealed.path, keys, create=False).check_second_factors()
    legacy_file(tmp_path / "plain.json", "ig.jo")  # plain, and a key to seal it under
    users_of(tmp_path / "plain.json", keys, create=False).check_second_factors()


def test_a_secret_that_does_not_open_says_which_file_and_account(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    users_of(path, store(tmp_path / "a"), create=True).add("ig.jo", PW, totp=True)
    other = users_of(path, store(tmp_path / "b"), create=False)
    assert not other.authenticate("ig.jo", "a wrong password!", "123456", now=NOW)
    with pytest.raises(SecondFactorUnreadable) as refused:
        other.authenticate("ig.jo", PW, "123456", now=NOW)
    assert (refused.value.path, refused.value.account) == (str(path), "ig.jo")


def test_a_server_started_before_the_first_enrolment_opens_what_add_user_sealed(
    tmp_path: Path,
) -> None:
    """A keystore without the secret: the server starts (no accounts yet), then add-user, in
    another process, makes the secret and seals a second factor; the running server signs the
    account in rather than calling the factor unreadable until a restart."""
    path = tmp_path / "users.json"
    keys_dir = tmp_path / "keys"
    server = users_of(path, store(keys_dir), create=False)
    server.check_second_factors()
    enrolment = users_of(path, FileKeyStore(keys_dir), create=True)
    enrolment.add("ig.kim", PW, totp=True)
    given = enrolment.totp_enrolment("ig.kim")
    assert given is not None
    assert server.authenticate("ig.kim", PW, pyotp.TOTP(given.secret).at(NOW), now=NOW)
