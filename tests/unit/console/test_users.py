"""Console accounts: Argon2id hashes and TOTP secrets in a private file."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
from argon2 import PasswordHasher

from broker.console import TotpBox, UserFile
from broker.crypto import random_bytes
from broker.errors import ConfigError, UsageError

FAST = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
KEY = random_bytes(32)  # what the console's keystore would hold as users-totp.secret


def box(owner: str = "console") -> TotpBox:
    return TotpBox(KEY, owner)


def test_a_password_is_stored_only_as_an_argon2id_hash_in_a_private_file(tmp_path: Path) -> None:
    users = UserFile(tmp_path / "console" / "users.json", box=box(), hasher=FAST)
    users.add("ig.jo", "a long enough secret")
    text = users.path.read_text()
    assert "a long enough secret" not in text
    assert "$argon2id$" in text
    assert stat.S_IMODE(users.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(users.path.parent.stat().st_mode) == 0o700


def test_only_the_right_password_verifies(tmp_path: Path) -> None:
    users = UserFile(tmp_path / "users.json", box=box(), hasher=FAST)
    users.add("ig.jo", "a long enough secret")
    assert users.verify("ig.jo", "a long enough secret")
    assert not users.verify("ig.jo", "a long enough secreT")
    assert not users.verify("nobody", "a long enough secret")
    assert not users.verify("NOT A NAME!", "a long enough secret")


def test_an_existing_account_is_replaced_only_on_request(tmp_path: Path) -> None:
    users = UserFile(tmp_path / "users.json", box=box(), hasher=FAST)
    users.add("ig.jo", "first password!")
    with pytest.raises(UsageError, match="exists"):
        users.add("ig.jo", "second password!")
    users.add("ig.jo", "second password!", replace=True)
    assert users.verify("ig.jo", "second password!")
    assert not users.verify("ig.jo", "first password!")


@pytest.mark.parametrize(
    ("name", "password", "match"),
    [("IG Jo", "long enough pw", "user name"), ("x", "long enough pw", "user name"),
     ("ig.jo", "short", "password"), ("ig.jo", "x" * 2000, "password")],
)  # fmt: skip
def test_bad_names_and_passwords_are_refused(
    tmp_path: Path, name: str, password: str, match: str
) -> None:
    users = UserFile(tmp_path / "users.json", box=box(), hasher=FAST)
    with pytest.raises(UsageError, match=match):
        users.add(name, password)
    assert not users.path.exists()


def test_a_hash_with_old_parameters_is_upgraded_at_sign_in(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    UserFile(path, box=box(), hasher=FAST).add("ig.jo", "a long enough secret")
    old = path.read_text()
    stronger = PasswordHasher(time_cost=2, memory_cost=128, parallelism=1)
    assert UserFile(path, box=box(), hasher=stronger).verify("ig.jo", "a long enough secret")
    assert path.read_text() != old
    assert "m=128,t=2" in path.read_text()


def test_a_damaged_accounts_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="console accounts file"):
        UserFile(path, box=box(), hasher=FAST).verify("ig.jo", "whatever password")


def test_removing_an_account(tmp_path: Path) -> None:
    users = UserFile(tmp_path / "users.json", box=box(), hasher=FAST)
    users.add("ig.jo", "a long enough secret")
    users.remove("ig.jo")
    assert not users.exists("ig.jo")
    with pytest.raises(UsageError, match="no console user"):
        users.remove("ig.jo")


def totp_user(tmp_path: Path) -> tuple[UserFile, pyotp.TOTP]:
    users = UserFile(tmp_path / "users.json", box=box(), hasher=FAST)
    users.add("ig.jo", "a long enough secret", totp=True)
    enrolment = users.totp_enrolment("ig.jo")
    assert enrolment is not None
    return users, pyotp.TOTP(enrolment.secret)


NOW = datetime(2026, 12, 1, 9, 0, 10, tzinfo=UTC)  # 10 s into a 30 s time step
STEP = timedelta(seconds=30)


def test_an_account_without_a_second_factor_needs_no_code(tmp_path: Path) -> None:
    users = UserFile(tmp_path / "users.json", box=box(), hasher=FAST)
    users.add("ig.jo", "a long enough secret")
    assert not users.has_second_factor("ig.jo")
    assert users.authenticate("ig.jo", "a long enough secret", None, now=NOW)
    assert users.authenticate("ig.jo", "a long enough secret", "123456", now=NOW)  # autofill
    assert not users.authenticate("ig.jo", "a long enough secreT", None, now=NOW)


def test_a_second_factor_account_needs_its_current_code_and_its_password(
    tmp_path: Path,
) -> None:
    users, totp = totp_user(tmp_path)
    assert users.has_second_factor("ig.jo")
    assert not users.authenticate("ig.jo", "a long enough secret", None, now=NOW)
    assert not users.authenticate("ig.jo", "a long enough secret", "", now=NOW)
    valid = {totp.at(NOW + k * STEP) for k in (-1, 0, 1)}
    wrong = next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)
    assert not users.authenticate("ig.jo", "a long enough secret", wrong, now=NOW)
    assert not users.authenticate("ig.jo", "a long enough secreT", totp.at(NOW), now=NOW)
    assert not users.authenticate("ig.jo", "a long enough secret", "١٢٣٤٥٦", now=NOW)
    assert users.authenticate("ig.jo", "a long enough secret", totp.at(NOW), now=NOW)


def test_a_code_is_accepted_one_step_either_side_of_now_and_no_further(tmp_path: Path) -> None:
    users, totp = totp_user(tmp_path)
    pw = "a long enough secret"
    assert not users.authenticate("ig.jo", pw, totp.at(NOW - 2 * STEP), now=NOW)
    assert not users.authenticate("ig.jo", pw, totp.at(NOW + 2 * STEP), now=NOW)
    assert users.authenticate("ig.jo", pw, totp.at(NOW - STEP), now=NOW)
    assert users.authenticate("ig.jo", pw, totp.at(NOW), now=NOW)
    assert users.authenticate("ig.jo", pw, totp.at(NOW + STEP), now=NOW)


def test_a_code_is_accepted_once_and_no_older_code_after_it(tmp_path: Path) -> None:
    users, totp = totp_user(tmp_path)
    pw = "a long enough secret"
    code = totp.at(NOW)
    assert users.authenticate("ig.jo", pw, code, now=NOW)
    assert not users.authenticate("ig.jo", pw, code, now=NOW)
    assert not users.authenticate("ig.jo", pw, totp.at(NOW - STEP), now=NOW)
    # Kept in the file: the CLI and the console (two UserFiles) refuse it alike.
    assert not UserFile(users.path, box=box(), hasher=FAST).authenticate("ig.jo", pw, code, now=NOW)
    assert users.authenticate("ig.jo", pw, totp.at(NOW + STEP), now=NOW + STEP)


def test_a_code_with_spaces_as_an_app_shows_it_is_accepted(tmp_path: Path) -> None:
    users, totp = totp_user(tmp_path)
    code = totp.at(NOW)
    assert users.authenticate("ig.jo", "a long enough secret", f"{code[:3]} {code[3:]}", now=NOW)


def test_the_accounts_file_keeps_the_second_factor_and_stays_format_1(tmp_path: Path) -> None:
    users, totp = totp_user(tmp_path)
    users.add("ig.sam", "another long secret")
    assert users.authenticate("ig.jo", "a long enough secret", totp.at(NOW), now=NOW)
    stored = json.loads(users.path.read_text())
    assert stored["format"] == 1
    jo = stored["users"]["ig.jo"]["totp"]
    assert "secret" not in jo
    assert box().open("ig.jo", jo["secret_sealed"]) == totp.secret
    assert datetime.fromisoformat(jo["enrolled_at"])
    assert jo["last_step"] == totp.timecode(NOW)
    assert "totp" not in stored["users"]["ig.sam"]
    again = UserFile(users.path, box=box(), hasher=FAST)
    assert [(a.name, a.second_factor) for a in again.accounts()] == [
        ("ig.jo", True),
        ("ig.sam", False),
    ]
    assert stat.S_IMODE(users.path.stat().st_mode) == 0o600


def test_an_accounts_file_from_before_second_factors_still_signs_in(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    user = {"hash": FAST.hash("a long enough secret"), "created_at": "2026-01-05T10:00:00+00:00"}
    path.write_text(json.dumps({"format": 1, "users": {"ig.jo": user}}))
    users = UserFile(path, box=box(), hasher=FAST)
    assert not users.has_second_factor("ig.jo")
    assert users.authenticate("ig.jo", "a long enough secret", None)


def test_the_enrolment_is_an_otpauth_uri_for_an_authenticator_app(tmp_path: Path) -> None:
    users, totp = totp_user(tmp_path)
    enrolment = users.totp_enrolment("ig.jo")
    assert enrolment is not None
    uri = urlsplit(enrolment.uri)
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert "ig.jo" in uri.path
    assert parse_qs(uri.query)["secret"] == [totp.secret]
    assert parse_qs(uri.query)["issuer"] == ["Accord governance console"]
    assert len(enrolment.secret) >= 32  # 160 bits, RFC 4226's recommendation
    assert enrolment.secret not in repr(enrolment)
    assert users.totp_enrolment("nobody") is None


def test_remaking_an_account_replaces_or_drops_its_second_factor(tmp_path: Path) -> None:
    users, totp = totp_user(tmp_path)
    users.add("ig.jo", "a new long secret", replace=True, totp=True)
    enrolment = users.totp_enrolment("ig.jo")
    assert enrolment is not None
    assert enrolment.secret != totp.secret
    assert not users.authenticate("ig.jo", "a new long secret", totp.at(NOW), now=NOW)
    users.add("ig.jo", "a newer long secret", replace=True)
    assert not users.has_second_factor("ig.jo")


def test_verify_without_a_code_never_passes_a_second_factor_account(tmp_path: Path) -> None:
    users, _ = totp_user(tmp_path)
    assert not users.verify("ig.jo", "a long enough secret")


class CountingHasher(PasswordHasher):
    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=64, parallelism=1)
        self.verified = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verified += 1
        return super().verify(hash, password)


@pytest.mark.parametrize(
    ("name", "password", "code"),
    [
        ("nobody", "a long enough secret", None),  # unknown name
        ("NOT A NAME!", "a long enough secret", None),
        ("ig.jo", "the wrong password", "right"),
        ("ig.jo", "a long enough secret", None),  # missing code
        ("ig.jo", "a long enough secret", "000000"),  # wrong code
        ("ig.jo", "a long enough secret", "right"),  # success
        ("ig.sam", "another long secret", None),  # success, no second factor
    ],
)
def test_every_answer_costs_exactly_one_argon2_verification(
    tmp_path: Path, name: str, password: str, code: str | None
) -> None:
    hasher = CountingHasher()
    users = UserFile(tmp_path / "users.json", box=box(), hasher=hasher)
    users.add("ig.jo", "a long enough secret", totp=True)
    users.add("ig.sam", "another long secret")
    enrolment = users.totp_enrolment("ig.jo")
    assert enrolment is not None
    if code == "right":
        code = pyotp.TOTP(enrolment.secret).at(NOW)
    hasher.verified = 0
    users.authenticate(name, password, code, now=NOW)
    assert hasher.verified == 1
    users.spend(password, code, now=NOW)  # what a throttled attempt costs
    assert hasher.verified == 2


def test_one_desks_accounts_file_is_refused_by_another_desk(tmp_path: Path) -> None:
    """Two desks given one users file (ACCORD_DESK__USERS_FILE) would sign in each other's
    staff: the file is its first owner's, and another owner's reads and writes stop."""
    path = tmp_path / "desk" / "users.json"
    tipton = UserFile(path, box=box("desk:cog-tipton"), hasher=FAST)
    tipton.add("duty.1", "a long enough secret", totp=False)
    oldbury = UserFile(path, box=box("desk:cog-oldbury"), hasher=FAST)
    with pytest.raises(ConfigError, match="desk:cog-tipton's accounts, not desk:cog-oldbury's"):
        oldbury.verify("duty.1", "a long enough secret")
    with pytest.raises(ConfigError, match="desk:cog-tipton's accounts"):
        oldbury.add("duty.2", "a long enough secret", totp=False)
    assert tipton.verify("duty.1", "a long enough secret")


def test_the_console_refuses_a_desks_accounts_file(tmp_path: Path) -> None:
    """ACCORD_CONSOLE__USERS_FILE pointed at a desk's file would sign desk staff in to the
    governance console."""
    path = tmp_path / "users.json"
    UserFile(path, box=box("desk:sandwell-coord"), hasher=FAST).add(
        "bob", "a long enough secret", totp=False
    )
    console = UserFile(path, box=box("console"), hasher=FAST)
    with pytest.raises(ConfigError, match="desk:sandwell-coord's accounts, not console's"):
        console.verify("bob", "a long enough secret")


def test_a_console_accounts_file_from_before_owners_is_taken_and_marked(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    user = {"hash": FAST.hash("a long enough secret"), "created_at": "2026-01-05T10:00:00+00:00"}
    path.write_text(json.dumps({"format": 1, "users": {"ig.jo": user}}))  # no "owner"
    console = UserFile(path, box=box("console"), hasher=FAST)
    assert console.verify("ig.jo", "a long enough secret")
    console.add("ig.sam", "another long secret", totp=False)
    with pytest.raises(ConfigError, match="console's accounts"):
        UserFile(path, box=box("desk:cog-tipton"), hasher=FAST).accounts()
