"""A sender with no Accord keystore (a Java or .NET system) makes its own Ed25519 key and
writes its entries document by hand, as schemas/key-directory.md §7 says: the governance
keystore signs it into the directory, and the broker's keystore then trusts the key."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from broker.config import KemSuite
from broker.envelope import KeyPurpose, KeyStatus, verify_detached
from broker.errors import KeyStoreError
from broker.keys import FileKeyStore, import_directory, init_keystores, sign_directory

AT = datetime(2026, 12, 6, 12, tzinfo=UTC)


def _key_id(alg: str, public: bytes) -> str:
    """schemas/envelope.md §3, written from the text."""
    label = alg.encode("ascii")
    digest = hashlib.sha256(b"accord/key-id/v1\x00" + bytes([len(label)]) + label + public)
    return digest.digest()[:16].hex()


def _entries(public: bytes, **changes: object) -> bytes:
    entry = {
        "key_id": _key_id("ed25519", public),
        "party": "swbh",
        "purpose": "sign",
        "alg": "ed25519",
        "public": base64.b64encode(public).decode("ascii"),
        "created_at": "2026-12-06T10:54:07Z",
        "status": "active",
        **changes,
    }
    return json.dumps(
        {"format": "accord-key-entries/v1", "party": "swbh", "keys": [entry]}
    ).encode()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    init_keystores(tmp_path / "keys", ["wmp"], passphrase=None, kem=KemSuite.X25519)
    return tmp_path / "keys"


def test_a_hand_written_entry_is_signed_into_the_directory_and_trusted_by_the_broker(
    root: Path,
) -> None:
    own = Ed25519PrivateKey.generate()
    public = own.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    directory = sign_directory(FileKeyStore(root / "governance"), [("swbh.json", _entries(public))])
    worker = FileKeyStore(root / "worker")
    import_directory(worker, directory, where=root / "directory.json", now=AT)
    [key] = worker.keys(party="swbh")
    assert (key.key_id, key.purpose, key.status) == (
        _key_id("ed25519", public), KeyPurpose.SIGN, KeyStatus.ACTIVE,
    )  # fmt: skip
    assert verify_detached(key, b"bundle", own.sign(b"bundle"))


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"created_at": "2026-12-06T10:54:07"}, r"keys\[0\]\.created_at: .*end it in Z \(UTC\)"),
        ({"created_at": "6 Dec 2026"}, r"keys\[0\]\.created_at: not an RFC 3339 date-time"),
        ({"key_id": "0" * 32}, r"keys\[0\]\.public: does not match its id"),
        ({"purpose": "encrypt"}, r"keys\[0\]\.purpose: the wrong purpose"),
        ({"comment": "ours"}, "members v1 does not know"),
        ({"alg": "rsa"}, r"keys\[0\]\.alg: must be one of ed25519"),
        ({"status": "live"}, r"keys\[0\]\.status: must be one of active"),
    ],
)
def test_a_hand_written_entry_that_breaks_the_format_is_refused_with_a_reason(
    root: Path, change: dict[str, object], why: str
) -> None:
    public = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    with pytest.raises(KeyStoreError, match=why):
        sign_directory(
            FileKeyStore(root / "governance"), [("swbh.json", _entries(public, **change))]
        )


def test_an_unpadded_public_key_is_refused_naming_the_field_and_the_fix(root: Path) -> None:
    """Base64 without its '=' padding: the field and what it must be, never the value."""
    public = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    unpadded = base64.b64encode(public).decode("ascii").rstrip("=")
    document = json.loads(_entries(public))
    document["keys"][0]["public"] = unpadded
    with pytest.raises(KeyStoreError) as caught:
        sign_directory(
            FileKeyStore(root / "governance"), [("swbh.json", json.dumps(document).encode())]
        )
    assert str(caught.value) == (
        "swbh.json: keys[0].public: must be the raw public key in standard base64 with padding"
    )


def test_an_upper_case_key_id_is_refused_as_such_not_as_a_wrong_fingerprint(root: Path) -> None:
    public = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    upper = _key_id("ed25519", public).upper()
    with pytest.raises(KeyStoreError) as caught:
        sign_directory(
            FileKeyStore(root / "governance"), [("swbh.json", _entries(public, key_id=upper))]
        )
    assert str(caught.value) == (
        "swbh.json: keys[0].key_id: must be 32 lower-case hex digits (the key's fingerprint)"
    )
    assert upper not in str(caught.value)


def _signed_by_hand(document: dict[str, object], key: Ed25519PrivateKey, key_id: str) -> bytes:
    """schemas/key-directory.md §7, written from the text: the label, a zero byte, then the
    RFC 8785 form of the document with signed_by and without signature."""
    body = {**document, "signed_by": key_id}
    signature = key.sign(b"accord/key-entries/v1\x00" + rfc8785.dumps(body))
    return json.dumps({**body, "signature": base64.b64encode(signature).decode("ascii")}).encode()


def test_a_hand_written_rotation_is_taken_only_signed_by_the_listed_key(root: Path) -> None:
    """Once swbh is in the directory, its next document must prove it holds a key listed
    there: the same rotation, unsigned or signed by the new key, is refused."""
    governance = FileKeyStore(root / "governance")
    old = Ed25519PrivateKey.generate()
    old_public = old.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    sign_directory(governance, [("swbh.json", _entries(old_public))])  # first onboarding
    new = Ed25519PrivateKey.generate()
    new_public = new.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    first = json.loads(_entries(old_public, not_after="2026-12-20T00:00:00Z"))["keys"][0]
    second = json.loads(_entries(new_public, created_at="2026-12-13T09:00:00Z"))["keys"][0]
    rotation = {"format": "accord-key-entries/v1", "party": "swbh", "keys": [first, second]}
    old_id, new_id = _key_id("ed25519", old_public), _key_id("ed25519", new_public)
    for data in (json.dumps(rotation).encode(), _signed_by_hand(rotation, new, new_id)):
        with pytest.raises(KeyStoreError, match="swbh already has keys in the directory"):
            sign_directory(governance, [("swbh.json", data)], now=AT)
    sign_directory(governance, [("swbh.json", _signed_by_hand(rotation, old, old_id))], now=AT)
    assert governance.public_key(new_id) is not None
