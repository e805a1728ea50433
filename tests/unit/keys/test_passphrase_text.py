"""``FileKeyStore(path, "passphrase")``: a passphrase given as plain text opens the keystore
as a ``SecretStr`` does (docs/sdk.md's integrator passed one and got ``AttributeError``), and
anything else is a ``UsageError`` naming the types it takes, never the value."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from broker.errors import KeyStoreError, UsageError
from broker.keys import FileKeyStore

PASSPHRASE = "correct horse battery staple"


def test_a_text_passphrase_makes_and_opens_a_keystore(tmp_path: Path) -> None:
    made = FileKeyStore(tmp_path / "k", PASSPHRASE, create=True, scrypt_n=2**10)
    made.ensure_party("wmp")
    assert made.protected
    for given in (PASSPHRASE, SecretStr(PASSPHRASE)):
        opened = FileKeyStore(tmp_path / "k", given)
        assert list(opened.private_parties()) == ["wmp"]
    with pytest.raises(KeyStoreError):
        FileKeyStore(tmp_path / "k", "wrong horse")


def test_a_text_passphrase_is_not_kept_as_text(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "k", PASSPHRASE, create=True, scrypt_n=2**10)
    assert PASSPHRASE not in repr(vars(store))


def test_a_passphrase_of_another_type_is_a_usage_error(tmp_path: Path) -> None:
    FileKeyStore(tmp_path / "k", PASSPHRASE, create=True, scrypt_n=2**10)
    with pytest.raises(UsageError, match=r"a str or pydantic\.SecretStr, not bytes") as info:
        FileKeyStore(tmp_path / "k", PASSPHRASE.encode())  # type: ignore[arg-type]
    assert "horse" not in str(info.value)


@pytest.mark.parametrize("blank", ["", "   ", SecretStr(""), SecretStr("\t")])
def test_an_empty_passphrase_is_refused_not_a_keystore_no_one_unlocks(
    tmp_path: Path, blank: str | SecretStr
) -> None:
    """``os.environ.get("PASS", "")`` made a keystore anyone could open with ``""``; the
    setting refuses an empty passphrase, and so does the class."""
    with pytest.raises(UsageError, match="passphrase is empty"):
        FileKeyStore(tmp_path / "k", blank, create=True, scrypt_n=2**10)
    assert not (tmp_path / "k").exists()
