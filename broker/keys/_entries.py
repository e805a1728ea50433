"""A party's key entries document (``accord-key-entries/v1``), and its proof of possession.

An entries document is what a party hands the IG officer for ``sign-directory``. Once a
party is in the directory, only the party itself may change its keys there, so its entries
must be signed by one of its signing keys that the master copy lists as live
(schemas/key-directory.md §5): otherwise anyone handing the officer a file naming the party
could give its key an expiry and add their own, and every keystore would take it under the
governance signature. A key the document itself adds proves nothing about who wrote it.
A party new to the directory has no such key; the out-of-band fingerprint check is its
trust anchor, as it always was.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from broker.envelope import KeyInfo, KeyPurpose, SigningIdentity, is_identifier, verify_detached
from broker.errors import KeyStoreError
from broker.keys._directory import (
    BAD_PARTY,
    ENTRIES_FORMAT,
    canonical,
    entry_json,
    load_document,
    parse_entry,
)

__all__ = [
    "EntriesDocument",
    "check_possession",
    "entries_bytes",
    "entries_signing_input",
    "parse_entries",
    "sign_entries",
]

_DOMAIN: Final = b"accord/key-entries/v1\x00"
_MEMBERS: Final = ("format", "party", "keys", "signed_by", "signature")
_HEX: Final = frozenset("0123456789abcdef")
_NOTHING: Final = "nothing was signed"


def entries_signing_input(body: Mapping[str, Any]) -> bytes:
    """What the party's key signs: a domain label (never a directory's, so neither signature
    can stand for the other), then the RFC 8785 canonical form of the document without its
    ``signature`` member (``signed_by`` included, so the signer named is the one that signed)."""
    return _DOMAIN + canonical({k: v for k, v in body.items() if k != "signature"})


def sign_entries(doc: Mapping[str, Any], signer: SigningIdentity) -> dict[str, Any]:
    """``doc`` (an entries document; any signature it had dropped) signed by ``signer``."""
    body = {k: v for k, v in doc.items() if k not in ("signed_by", "signature")}
    body["signed_by"] = signer.info.key_id
    signature = signer.key.sign(entries_signing_input(body))
    body["signature"] = base64.b64encode(signature).decode("ascii")
    return body


def entries_bytes(party: str, keys: Sequence[KeyInfo], signer: SigningIdentity | None) -> bytes:
    """An entries document of ``keys``, signed by ``signer`` (unsigned with None)."""
    doc: dict[str, Any] = {
        "format": ENTRIES_FORMAT,
        "party": party,
        "keys": [entry_json(k) for k in keys],
    }
    if signer is not None:
        doc = sign_entries(doc, signer)
    return json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"


@dataclass(frozen=True)
class EntriesDocument:
    """A parsed entries document; its signature (if any) is not yet checked."""

    where: str
    party: str
    keys: tuple[KeyInfo, ...]
    body: Mapping[str, Any]  # as received: the signature covers it as parsed
    signed_by: str | None
    signature: bytes | None

    def signed_with(self, key: KeyInfo) -> bool:
        if self.signature is None:
            return False
        try:
            signing_input = entries_signing_input(self.body)
        except KeyStoreError as exc:
            raise KeyStoreError(f"{self.where}: {exc}; {_NOTHING}") from None
        return verify_detached(key, signing_input, self.signature)


def parse_entries(data: bytes, where: str) -> EntriesDocument:
    """An entries document, checked as §5 and §7 say (not yet who signed it)."""
    doc = load_document(data, where, ENTRIES_FORMAT, "a key entries document")
    unknown = sorted(set(doc) - set(_MEMBERS))
    if unknown:
        raise KeyStoreError(
            f"{where}: has members {ENTRIES_FORMAT} does not know (it has "
            f"{', '.join(_MEMBERS)} only)"
        )
    party = doc.get("party")
    if not isinstance(party, str) or not party:
        raise KeyStoreError(f"{where}: party: missing (the party whose keys these are)")
    if not is_identifier(party):
        raise KeyStoreError(f"{where}: party: {BAD_PARTY}")
    entries = doc.get("keys", [])
    if not isinstance(entries, list):
        raise KeyStoreError(f"{where}: keys: must be an array of key entries")
    keys = tuple(parse_entry(e, where, i) for i, e in enumerate(entries))
    if any(k.party != party for k in keys):
        raise KeyStoreError(f"{where}: an entry names another party than the document")
    signed_by, signature = _signature(doc, where)
    return EntriesDocument(where, party, keys, doc, signed_by, signature)


def _signature(doc: Mapping[str, Any], where: str) -> tuple[str | None, bytes | None]:
    by, value = doc.get("signed_by"), doc.get("signature")
    if by is None and value is None:
        return None, None
    if by is None or value is None:
        raise KeyStoreError(f"{where}: signed_by and signature go together: give both or neither")
    if not isinstance(by, str) or len(by) != 32 or not set(by) <= _HEX:
        raise KeyStoreError(
            f"{where}: signed_by: must be the signing key's id, 32 lower-case hex digits"
        )
    try:
        raw = base64.b64decode(str(value), validate=True)
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != 64:
        raise KeyStoreError(
            f"{where}: signature: must be the 64-byte Ed25519 signature in standard base64"
        )
    return by, raw


def check_possession(
    documents: Sequence[EntriesDocument],
    known: Sequence[KeyInfo],
    *,
    now: datetime,
    unsigned: Collection[str] = (),
) -> list[str]:
    """Refuses, in one line, a document of a party the master copy ``known`` already lists
    that is not signed by one of that party's live signing keys there, unless the officer
    named the party in ``unsigned``; a signature present must verify, whoever the party.
    Returns the parties taken on ``unsigned`` alone, for the officer to be warned of."""
    taken: list[str] = []
    for doc in documents:
        listed = [k for k in known if k.party == doc.party]
        live = {k.key_id: k for k in listed if k.purpose is KeyPurpose.SIGN and k.is_live(now)}
        if doc.signed_by is not None:
            own = {k.key_id: k for k in doc.keys if k.purpose is KeyPurpose.SIGN}
            key = live.get(doc.signed_by) or own.get(doc.signed_by)
            if key is None:
                raise KeyStoreError(
                    f"{doc.where}: signed by key {doc.signed_by}, which is no live signing "
                    f"key of {doc.party} in the directory nor in the document; {_NOTHING}"
                )
            if not doc.signed_with(key):
                raise KeyStoreError(
                    f"{doc.where}: its signature by key {doc.signed_by} does not verify (it was "
                    f"changed after {doc.party} signed it): ask {doc.party} to export it "
                    f"again; {_NOTHING}"
                )
            if doc.signed_by in live:
                continue
        if not listed:
            continue  # first onboarding: the fingerprints checked out of band vouch for it
        if doc.party in unsigned:
            if doc.party not in taken:
                taken.append(doc.party)
            continue
        by = (
            "" if doc.signed_by is None
            else f", not by key {doc.signed_by}, which the directory does not list as live"
        )  # fmt: skip
        raise KeyStoreError(
            f"{doc.where}: {doc.party} already has keys in the directory, so its entries must "
            "be signed by one of them (accord keys export signs them; for a party that lost "
            f"every one, see --unsigned){by}; {_NOTHING}"
        )
    return taken
