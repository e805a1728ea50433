"""Generate (or check) the key directory test vectors: ``schemas/vectors/key-directory-v1.json``.

``python -m broker.keys.vectors`` writes the file; ``--check`` only compares. Everything is
deterministic (fixed keys and times; Ed25519 signatures are deterministic), so regenerating
gives the same bytes. The valid directory lists a governance key, the worker's two keys and an
agency's two, one revoked, and three signing keys of the agency's that are no longer live
(expired, retired, revoked); the invalid variants each break one rule of
``schemas/key-directory.md``. The ``entries`` section is the agency's signed rotation
(§5, §7), checked against the valid directory, and variants a forger could hand in.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from broker._vectors import vectors_main
from broker.crypto import KemAlg, KemPrivateKey, SigningKey
from broker.envelope import KeyAlg, KeyInfo, KeyStatus, SigningIdentity, compute_key_id
from broker.keys._directory import ENTRIES_FORMAT, entry_json, signed_bytes, signing_input
from broker.keys._entries import entries_signing_input, sign_entries

__all__ = ["generate", "main"]

_AT: Final = datetime(2026, 9, 21, 15, 6, 40, tzinfo=UTC)
_PATH: Final = Path("schemas/vectors/key-directory-v1.json")


def _material(label: str, n: int) -> bytes:
    return hashlib.shake_256(f"accord key directory vector/{label}".encode()).digest(n)


def _signing(party: str, label: str = "") -> tuple[SigningKey, KeyInfo]:
    key = SigningKey.from_raw(_material(f"{party}/sign{label}", 32))
    public = key.public_raw()
    info = KeyInfo(compute_key_id(KeyAlg.ED25519, public), party, KeyAlg.ED25519, public, _AT)
    return key, info


def _encryption(party: str, **changes: Any) -> KeyInfo:
    key = KemPrivateKey(KemAlg.X25519, _material(f"{party}/encrypt", 32))
    public = key.public_raw()
    info = KeyInfo(compute_key_id(KeyAlg.X25519, public), party, KeyAlg.X25519, public, _AT)
    return replace(info, **changes)


def _ended(label: str, **changes: Any) -> tuple[SigningKey, KeyInfo]:
    """A signing key of wmp the directory lists as no longer live (expired, retired or
    revoked): its signature on wmp's entries proves nothing."""
    key, info = _signing("wmp", label)
    return key, replace(info, **changes)


_ENDED: Final[dict[str, dict[str, Any]]] = {
    "expired": {"created_at": datetime(2026, 9, 1, tzinfo=UTC),
                "not_after": datetime(2026, 9, 14, tzinfo=UTC)},
    "retired": {"status": KeyStatus.RETIRED, "status_changed_at": _AT},
    "revoked": {"status": KeyStatus.REVOKED, "status_changed_at": _AT},
}  # fmt: skip


def _entries(
    wmp: SigningKey,
    wmp_info: KeyInfo,
    others: dict[str, tuple[SigningKey, KeyInfo]],
) -> dict[str, Any]:
    """wmp's rotation: its listed signing key given an expiry, a new one added, signed by the
    listed key (the only kind that counts for a party already in the directory). ``others``:
    keys the directory lists whose signature counts for nothing here (the worker's live one,
    wmp's ended ones)."""
    new_key, new_info = _signing("wmp", "/2")
    ends = replace(wmp_info, not_after=datetime(2026, 9, 28, 15, 6, 40, tzinfo=UTC))
    body = {
        "format": ENTRIES_FORMAT,
        "party": "wmp",
        "keys": [entry_json(ends), entry_json(new_info)],
    }
    signed = sign_entries(body, SigningIdentity(wmp_info, wmp))

    def changed(doc: dict[str, Any]) -> None:
        doc["keys"][0]["not_after"] = None

    def by_new_key(doc: dict[str, Any]) -> None:
        doc.update(sign_entries(doc, SigningIdentity(new_info, new_key)))

    def unsigned(doc: dict[str, Any]) -> None:
        del doc["signed_by"], doc["signature"]

    def by(name: str) -> Any:
        key, info = others[name]
        return lambda doc: doc.update(sign_entries(doc, SigningIdentity(info, key)))

    def variant(name: str, why: str, edit: Any) -> dict[str, Any]:
        doc = copy.deepcopy(signed)
        edit(doc)
        return {"name": name, "why": why, "document": doc}

    return {
        "checked_at": _AT.isoformat(),
        "signing_input_hex": entries_signing_input(signed).hex(),
        "valid": signed,
        "invalid": [
            variant("changed-after-signing", "signature does not verify", changed),
            variant("signed-by-a-key-it-adds", "signer is no live key of the party", by_new_key),
            variant("unsigned", "no signature", unsigned),
            variant("signed-by-another-partys-live-key", "signer is no live key of the party",
                    by("worker")),
            *(variant(f"signed-by-{'an' if name == 'expired' else 'a'}-{name}-key",
                      "signer is no live key of the party", by(name))
              for name in _ENDED),
        ],
    }  # fmt: skip


def generate() -> dict[str, Any]:
    governance, gov_info = _signing("governance")
    worker_key, worker_sign = _signing("worker")
    wmp_key, wmp_sign = _signing("wmp")
    revoked = _encryption("wmp", status=KeyStatus.REVOKED, status_changed_at=_AT)
    ended = {name: _ended(f"/{name}", **changes) for name, changes in _ENDED.items()}
    keys = [gov_info, worker_sign, _encryption("worker"), wmp_sign, revoked,
            *(info for _, info in ended.values())]  # fmt: skip
    document = json.loads(
        signed_bytes(keys, serial=3, issued_at=_AT, signer=gov_info.key_id, sign=governance.sign)
    )
    other, other_info = _signing("someone-else")

    def variant(name: str, why: str, edit: Any) -> dict[str, Any]:
        doc = copy.deepcopy(document)
        edit(doc)
        return {"name": name, "why": why, "document": doc}

    def resign_with_other(doc: dict[str, Any]) -> None:
        doc["signature"]["key_id"] = other_info.key_id
        sig = other.sign(signing_input(doc))
        doc["signature"]["value"] = base64.b64encode(sig).decode("ascii")

    def unrevoke(doc: dict[str, Any]) -> None:
        for k in doc["keys"]:
            if k["status"] == "revoked":
                k["status"] = "active"

    def wrong_id(doc: dict[str, Any]) -> None:
        doc["keys"][0]["key_id"] = "0" * 32

    def drop_signature(doc: dict[str, Any]) -> None:
        del doc["signature"]

    return {
        "description": "Accord key directory v1 test vectors (schemas/key-directory.md). "
        "Synthetic keys, derived from fixed labels; no real party.",
        "trusted_governance_key": {
            "key_id": gov_info.key_id,
            "public": base64.b64encode(gov_info.public).decode("ascii"),
        },
        "signing_input_hex": signing_input(document).hex(),
        "valid": document,
        "invalid": [
            variant("revocation-undone", "signature does not verify", unrevoke),
            variant("signed-by-an-untrusted-key", "signer is not trusted", resign_with_other),
            variant("key-id-not-its-fingerprint", "a key id is not its fingerprint", wrong_id),
            variant("unsigned", "no signature", drop_signature),
        ],
        "entries": _entries(wmp_key, wmp_sign, {"worker": (worker_key, worker_sign), **ended}),
    }


def main(argv: list[str] | None = None) -> int:
    return vectors_main("python -m broker.keys.vectors", _PATH, generate, argv)


if __name__ == "__main__":
    raise SystemExit(main())
