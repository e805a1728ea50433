"""The public key directory: every party's public keys, signed by the governance key.

What organisations exchange instead of private files (specified in
``schemas/key-directory.md``, with test vectors): each party exports its entries; the
governance officer merges them into the master directory and signs it; every party imports
the signed document. A directory is accepted only if a trusted governance signing key signed
it and its serial is newer than the last one imported, so a tampered or replayed-old
directory (a revocation rolled back, say) is refused.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import rfc8785

from broker.envelope import (
    KeyAlg,
    KeyInfo,
    KeyStatus,
    compute_key_id,
    is_identifier,
    verify_detached,
)
from broker.errors import KeyStoreError

__all__ = [
    "BAD_PARTY",
    "DIRECTORY_FORMAT",
    "ENTRIES_FORMAT",
    "SignedDirectory",
    "canonical",
    "entry_json",
    "load_document",
    "parse_entry",
    "parse_signed",
    "signed_bytes",
    "signing_input",
]

DIRECTORY_FORMAT: Final = "accord-key-directory/v1"
ENTRIES_FORMAT: Final = "accord-key-entries/v1"
_DOMAIN: Final = b"accord/key-directory/v1\x00"
_DOCUMENT_MEMBERS: Final = frozenset({"format", "serial", "issued_at", "keys", "signature"})
_ENTRY_MEMBERS: Final = frozenset(
    {"key_id", "party", "purpose", "alg", "public", "created_at", "status", "not_after",
     "status_changed_at"}
)  # fmt: skip


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _parse_ts(value: object, where: str, name: str) -> datetime | None:
    """A timestamp member; a refusal names the member and the fix, never its value."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise KeyStoreError(f"{where}: {name}: must be a JSON string (an RFC 3339 date-time)")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise KeyStoreError(
            f"{where}: {name}: not an RFC 3339 date-time (2026-12-06T10:54:07Z, say)"
        ) from None
    if parsed.tzinfo is None:
        raise KeyStoreError(f"{where}: {name}: has no UTC offset: end it in Z (UTC)")
    return parsed


def entry_json(k: KeyInfo) -> dict[str, Any]:
    """One key as the directory (and the keystore's own ``directory.json``) writes it."""
    return {
        "key_id": k.key_id,
        "party": k.party,
        "purpose": k.purpose.value,
        "alg": k.alg.value,
        "public": base64.b64encode(k.public).decode("ascii"),
        "created_at": _ts(k.created_at),
        "status": k.status.value,
        "not_after": _ts(k.not_after),
        "status_changed_at": _ts(k.status_changed_at),
    }


# Said instead of the name: one failing the rule may hold terminal control codes, which
# would hide lines of the change list the officer reads, or look like another party's.
BAD_PARTY: Final = "a party id that is not letters, digits and . _ : - (1-255 characters)"

_REQUIRED: Final = ("key_id", "party", "alg", "public", "created_at", "status")
_STRINGS: Final = (*_REQUIRED, "purpose")
_OPTIONAL: Final = ("not_after", "status_changed_at")
_HEX: Final = frozenset("0123456789abcdef")
_ALGS: Final = ", ".join(a.value for a in KeyAlg)
_STATUSES: Final = ", ".join(s.value for s in KeyStatus)


def parse_entry(e: object, where: str, index: int | None = None) -> KeyInfo:
    """A key entry, checked: its id must be the fingerprint of its public key.

    A refusal names the member (``keys[2].public``, with ``index``) and what it must be, in
    our own words only: an entry's values may be key material, and are never repeated."""
    at = "a key entry" if index is None else f"keys[{index}]"
    if not isinstance(e, dict):
        raise KeyStoreError(f"{where}: {at}: not a JSON object")
    if not set(e) <= _ENTRY_MEMBERS:
        raise KeyStoreError(f"{where}: {at}: has members v1 does not know")
    at = "" if index is None else f"{at}."
    missing = [m for m in _REQUIRED if m not in e]
    if missing:
        raise KeyStoreError(f"{where}: {at}{missing[0]}: missing")
    # Strings only: a number where a string belongs would pass str() here, then break the
    # canonical form the signature is checked over (RFC 8785 refuses big integers).
    wrong = [m for m in _STRINGS if m in e and not isinstance(e[m], str)]
    wrong += [m for m in _OPTIONAL if e.get(m) is not None and not isinstance(e[m], str)]
    if wrong:
        raise KeyStoreError(f"{where}: {at}{wrong[0]}: must be a JSON string")
    key_id = str(e["key_id"])
    if len(key_id) != 32 or not set(key_id) <= _HEX:
        raise KeyStoreError(
            f"{where}: {at}key_id: must be 32 lower-case hex digits (the key's fingerprint)"
        )
    try:
        alg = KeyAlg(e["alg"])
    except ValueError:
        raise KeyStoreError(f"{where}: {at}alg: must be one of {_ALGS}") from None
    try:
        status = KeyStatus(e["status"])
    except ValueError:
        raise KeyStoreError(f"{where}: {at}status: must be one of {_STATUSES}") from None
    try:
        public = base64.b64decode(str(e["public"]), validate=True)
    except (ValueError, binascii.Error):
        raise KeyStoreError(
            f"{where}: {at}public: must be the raw public key in standard base64 with padding"
        ) from None
    party = e["party"]
    if not isinstance(party, str) or not is_identifier(party):
        # The keystore's own rule (ensure_party): "governance " or "wmp\u200b" would
        # otherwise join as a party of their own, looking like the real one.
        raise KeyStoreError(f"{where}: {at}party: {BAD_PARTY}")
    info = KeyInfo(
        key_id=key_id,
        party=party,
        alg=alg,
        public=public,
        created_at=_parse_ts(e["created_at"], where, f"{at}created_at") or datetime.now(UTC),
        status=status,
        not_after=_parse_ts(e.get("not_after"), where, f"{at}not_after"),
        status_changed_at=_parse_ts(e.get("status_changed_at"), where, f"{at}status_changed_at"),
    )
    if compute_key_id(info.alg, info.public) != info.key_id:
        raise KeyStoreError(
            f"{where}: {at}public: does not match its id (key_id must be the fingerprint of "
            "alg and public, schemas/envelope.md §3)"
        )
    if e.get("purpose") not in (None, info.purpose.value):
        raise KeyStoreError(
            f"{where}: {at}purpose: the wrong purpose for its alg (sign for ed25519, "
            "encrypt for a KEM key)"
        )
    return info


def signing_input(body: Mapping[str, Any]) -> bytes:
    """What the governance key signs: a domain label, then the RFC 8785 (JCS) canonical form
    of the document without its ``signature`` member."""
    return _DOMAIN + canonical({k: v for k, v in body.items() if k != "signature"})


def canonical(body: Mapping[str, Any]) -> bytes:
    """RFC 8785's form of ``body``; one it cannot take (an integer beyond 2**53, say) is a
    malformed document, refused in one line, not a traceback."""
    try:
        return rfc8785.dumps(body)
    except (rfc8785.CanonicalizationError, TypeError):
        raise KeyStoreError(
            "the document holds a value RFC 8785 cannot take (a number beyond 2**53, say)"
        ) from None


@dataclass(frozen=True)
class SignedDirectory:
    serial: int
    issued_at: datetime
    keys: tuple[KeyInfo, ...]
    signer: str  # the governance signing key's id
    body: Mapping[str, Any]  # as received, for verification
    signature: bytes

    def verify(self, trusted: Iterable[KeyInfo]) -> bool:
        """True when one of the ``trusted`` governance signing keys made the signature."""
        for key in trusted:
            if key.key_id == self.signer and key.status is not KeyStatus.REVOKED:
                return verify_detached(key, signing_input(self.body), self.signature)
        return False


def signed_bytes(
    keys: Iterable[KeyInfo], *, serial: int, issued_at: datetime, signer: str, sign: Any
) -> bytes:
    """A directory document, signed with ``sign`` (the governance key's ``sign``)."""
    body: dict[str, Any] = {
        "format": DIRECTORY_FORMAT,
        "serial": serial,
        "issued_at": _ts(issued_at),
        "keys": [entry_json(k) for k in sorted(keys, key=lambda k: k.key_id)],
    }
    signature = sign(signing_input(body))
    body["signature"] = {
        "alg": "ed25519",
        "key_id": signer,
        "value": base64.b64encode(signature).decode("ascii"),
    }
    return rfc8785.dumps(body)


def load_document(data: bytes, where: object, fmt: str, what: str) -> dict[str, Any]:
    """A JSON object whose ``format`` is ``fmt``, or one line saying it is not ``what``."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise KeyStoreError(f"{where}: not {what} (not JSON)") from None
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise KeyStoreError(f"{where}: not {what} ({fmt})")
    return doc


def parse_signed(data: bytes, where: Path) -> SignedDirectory:
    """Parse (not yet verify) a directory document; a malformed one is refused."""
    body = load_document(data, where, DIRECTORY_FORMAT, "a key directory")
    if not set(body) <= _DOCUMENT_MEMBERS:
        raise KeyStoreError(f"{where}: the key directory has members v1 does not know")
    sig = body.get("signature")
    serial_value = body.get("serial")
    if type(serial_value) is not int or not 0 <= serial_value < 2**53:
        # RFC 8785 takes integers up to 2**53 only; a string or a float is no serial.
        raise KeyStoreError(f"{where}: serial: must be a whole number from 0 to 2**53 - 1")
    try:
        serial = int(body["serial"])
        issued_at = _parse_ts(body["issued_at"], str(where), "issued_at")
        keys = tuple(parse_entry(e, str(where), i) for i, e in enumerate(body["keys"]))
        signer = str(sig["key_id"]) if isinstance(sig, dict) else ""
        signature = base64.b64decode(str(sig["value"]), validate=True) if sig else b""
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise KeyStoreError(f"{where}: the key directory is not in the expected format") from None
    if issued_at is None or not signer or (isinstance(sig, dict) and sig.get("alg") != "ed25519"):
        raise KeyStoreError(f"{where}: the key directory is not signed")
    if len({k.key_id for k in keys}) != len(keys):
        raise KeyStoreError(f"{where}: the key directory lists a key twice")
    return SignedDirectory(serial, issued_at, keys, signer, body, signature)
