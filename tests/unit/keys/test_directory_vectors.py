"""The key directory vectors, checked as another language's implementation would check them:
the standard library, cryptography's Ed25519 and an RFC 8785 canonicaliser, no Accord code."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

VECTORS = Path(__file__).resolve().parents[3] / "schemas" / "vectors" / "key-directory-v1.json"
DOC = json.loads(VECTORS.read_text())
PURPOSE = {"ed25519": "sign", "x25519": "encrypt", "mlkem768-x25519": "encrypt"}


def _fingerprint(alg: str, public: bytes) -> str:
    name = alg.encode("ascii")
    data = b"accord/key-id/v1\x00" + bytes([len(name)]) + name + public
    return hashlib.sha256(data).digest()[:16].hex()


def _verify(document: dict[str, Any], trusted: dict[str, str]) -> str | None:
    """None when the document is acceptable (schemas/key-directory.md §§1-4), else why not."""
    for key in document.get("keys", []):
        if _fingerprint(key["alg"], base64.b64decode(key["public"])) != key["key_id"]:
            return "a key id is not its fingerprint"
        if PURPOSE[key["alg"]] != key["purpose"]:
            return "wrong purpose"
    sig = document.get("signature")
    if sig is None:
        return "no signature"
    if sig["key_id"] not in trusted:
        return "signer is not trusted"
    body = {k: v for k, v in document.items() if k != "signature"}
    message = b"accord/key-directory/v1\x00" + rfc8785.dumps(body)
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(trusted[sig["key_id"]]))
    try:
        public.verify(base64.b64decode(sig["value"]), message)
    except InvalidSignature:
        return "signature does not verify"
    return None


TRUSTED = {DOC["trusted_governance_key"]["key_id"]: DOC["trusted_governance_key"]["public"]}


def test_the_valid_directory_verifies_and_its_signing_input_is_as_published() -> None:
    assert _verify(DOC["valid"], TRUSTED) is None
    body = {k: v for k, v in DOC["valid"].items() if k != "signature"}
    assert (b"accord/key-directory/v1\x00" + rfc8785.dumps(body)).hex() == DOC["signing_input_hex"]
    statuses = {k["party"]: k["status"] for k in DOC["valid"]["keys"] if k["purpose"] == "encrypt"}
    assert statuses == {"worker": "active", "wmp": "revoked"}


@pytest.mark.parametrize("case", DOC["invalid"], ids=lambda c: c["name"])
def test_each_invalid_directory_is_refused_for_its_reason(case: dict[str, Any]) -> None:
    assert _verify(case["document"], TRUSTED) == case["why"]


@pytest.mark.parametrize("case", [{"name": "valid", "why": None, "document": DOC["valid"]},
                                  *DOC["invalid"]], ids=lambda c: c["name"])  # fmt: skip
def test_accords_own_reader_agrees(case: dict[str, Any], tmp_path: Path) -> None:
    from broker.errors import KeyStoreError
    from broker.keys._directory import parse_signed

    data = json.dumps(case["document"]).encode()
    try:
        signed = parse_signed(data, tmp_path / "d.json")
    except KeyStoreError:
        assert case["why"] is not None
        return
    from broker.keys._directory import parse_entry

    gov = next(k for k in case["document"]["keys"] if k["party"] == "governance")
    ok = signed.verify([parse_entry(gov, "vector")])
    assert ok == (case["why"] is None)


def test_the_vectors_are_what_the_generator_writes() -> None:
    from broker.keys.vectors import generate

    assert generate() == DOC


ENTRIES = DOC["entries"]


def _verify_entries(document: dict[str, Any], directory: dict[str, Any], at: str) -> str | None:
    """None when the IG officer may sign these entries of a party the (verified) directory
    already lists (schemas/key-directory.md §5, §7), else why not."""
    if "signature" not in document:
        return "no signature"
    now = datetime.fromisoformat(at)
    live = {
        k["key_id"]: k["public"] for k in directory["keys"]
        if k["party"] == document["party"] and k["purpose"] == "sign"
        and k["status"] == "active"
        and (k.get("not_after") is None or now < datetime.fromisoformat(k["not_after"]))
    }  # fmt: skip
    if document["signed_by"] not in live:
        return "signer is no live key of the party"
    body = {k: v for k, v in document.items() if k != "signature"}
    message = b"accord/key-entries/v1\x00" + rfc8785.dumps(body)
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(live[document["signed_by"]]))
    try:
        public.verify(base64.b64decode(document["signature"]), message)
    except InvalidSignature:
        return "signature does not verify"
    return None


def test_the_signed_entries_verify_against_the_directory_and_the_input_is_as_published() -> None:
    assert _verify_entries(ENTRIES["valid"], DOC["valid"], ENTRIES["checked_at"]) is None
    body = {k: v for k, v in ENTRIES["valid"].items() if k != "signature"}
    message = b"accord/key-entries/v1\x00" + rfc8785.dumps(body)
    assert message.hex() == ENTRIES["signing_input_hex"]


@pytest.mark.parametrize("case", ENTRIES["invalid"], ids=lambda c: c["name"])
def test_each_invalid_entries_document_is_refused_for_its_reason(case: dict[str, Any]) -> None:
    assert _verify_entries(case["document"], DOC["valid"], ENTRIES["checked_at"]) == case["why"]


@pytest.mark.parametrize("case", [{"name": "valid", "why": None, "document": ENTRIES["valid"]},
                                  *ENTRIES["invalid"]], ids=lambda c: c["name"])  # fmt: skip
def test_accords_own_entries_check_agrees(case: dict[str, Any]) -> None:
    from broker.errors import KeyStoreError
    from broker.keys._directory import parse_entry
    from broker.keys._entries import check_possession, parse_entries

    known = [parse_entry(e, "vector") for e in DOC["valid"]["keys"]]
    document = parse_entries(json.dumps(case["document"]).encode(), "wmp.json")
    at = datetime.fromisoformat(ENTRIES["checked_at"])
    try:
        check_possession([document], known, now=at)
    except KeyStoreError:
        assert case["why"] is not None
        return
    assert case["why"] is None
