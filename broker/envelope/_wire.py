"""Byte layouts of the record value and the signed DEK bundle (wire format v1).

``schemas/envelope.md`` is the normative description; this module is its implementation.
Parsing is strict: every field has exactly one accepted encoding and no trailing bytes are
allowed, so the associated data (the header bytes as received) is canonical by construction.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Final, NamedTuple

from broker.crypto import (
    AEAD_NONCE_LEN,
    AEAD_TAG_LEN,
    ED25519_SIG_LEN,
    HPKE_AEAD_ID,
    HPKE_KDF_ID,
    KemAlg,
)
from broker.envelope._keytypes import KEY_ID_LEN
from broker.errors import EnvelopeError, MalformedEnvelope, UnsupportedVersion

__all__ = [
    "BUNDLE_MAGIC",
    "DEK_ID_LEN",
    "DEK_LEN",
    "RECORD_MAGIC",
    "VERSION",
    "Bundle",
    "RecordHeader",
    "assemble_bundle",
    "bundle_context",
    "check_identifier",
    "hpke_info",
    "is_identifier",
    "parse_bundle",
    "parse_record",
    "record_prefix",
    "signature_input",
]

VERSION: Final = 1
RECORD_MAGIC: Final = b"ACRD"
BUNDLE_MAGIC: Final = b"ACDK"
DEK_LEN: Final = 32
DEK_ID_LEN: Final = 16
HPKE_INFO_LABEL: Final = b"accord/dek/v1\x00"
SIGNATURE_LABEL: Final = b"accord/dek-bundle/v1\x00"

# Identifiers (party ids, topics, schema names, event ids) are short printable ASCII: a
# Kafka topic name's alphabet plus ':'. Restricting them keeps encodings unambiguous.
_ID_RE: Final = re.compile(rb"[A-Za-z0-9._:\-]{1,255}")
_U16: Final = struct.Struct(">H")
_U64: Final = struct.Struct(">Q")
_SUITE: Final = struct.Struct(">HHH")


def is_identifier(value: str) -> bool:
    """Whether ``value`` may be a party id, topic, schema name or event id on the wire."""
    return value.isascii() and _ID_RE.fullmatch(value.encode("ascii")) is not None


def check_identifier(field: str, value: str) -> bytes:
    """Encode an identifier for sealing; a bad one is the caller's mistake, named by field."""
    raw = value.encode("ascii", "replace")
    if not _ID_RE.fullmatch(raw):
        raise EnvelopeError(f"cannot seal: {field} is not a valid identifier")
    return raw


def _str8(raw: bytes) -> bytes:
    return bytes([len(raw)]) + raw


class RecordHeader(NamedTuple):
    """The routing header of a record value: all of it is associated data.

    A NamedTuple rather than a frozen dataclass: it is built once per record on both hot
    paths, and frozen-dataclass construction costs several times more.
    """

    version: int
    event_id: str
    sender: str
    recipient: str
    schema: str
    dek_id: bytes
    topic: str
    nonce: bytes


def record_prefix(
    *, event_id: bytes, sender: bytes, recipient: bytes, schema: bytes, dek_id: bytes, topic: bytes
) -> bytes:
    """The header bytes up to (not including) the nonce; identifiers already checked."""
    return b"".join(
        (
            RECORD_MAGIC,
            bytes([VERSION]),
            _str8(event_id),
            _str8(sender),
            _str8(recipient),
            _str8(schema),
            dek_id,
            _str8(topic),
        )
    )


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise MalformedEnvelope
        out = self.data[self.pos : end]
        self.pos = end
        return out

    def ident(self) -> str:
        raw = self.take(self.take(1)[0])
        if not _ID_RE.fullmatch(raw):
            raise MalformedEnvelope
        return raw.decode("ascii")


def _check_magic(data: bytes, magic: bytes) -> None:
    if len(data) < len(magic) + 1 or data[: len(magic)] != magic:
        raise MalformedEnvelope
    if data[len(magic)] != VERSION:
        raise UnsupportedVersion


def _idents(data: bytes, pos: int, count: int) -> tuple[list[str], int]:
    # Hot path of every open: plain slicing, no helper objects.
    out = []
    n = len(data)
    for _ in range(count):
        if pos >= n:
            raise MalformedEnvelope
        end = pos + 1 + data[pos]
        raw = data[pos + 1 : end]
        if end > n or not _ID_RE.fullmatch(raw):
            raise MalformedEnvelope
        out.append(raw.decode("ascii"))
        pos = end
    return out, pos


def parse_record(value: bytes) -> tuple[RecordHeader, int]:
    """Split a record value into its header and the offset where the ciphertext starts."""
    if not isinstance(value, bytes):
        raise MalformedEnvelope
    _check_magic(value, RECORD_MAGIC)
    (event_id, sender, recipient, schema), pos = _idents(value, len(RECORD_MAGIC) + 1, 4)
    dek_id = value[pos : pos + DEK_ID_LEN]
    (topic,), pos = _idents(value, pos + DEK_ID_LEN, 1)
    nonce = value[pos : pos + AEAD_NONCE_LEN]
    pos += AEAD_NONCE_LEN
    if len(dek_id) != DEK_ID_LEN or len(value) - pos < AEAD_TAG_LEN:
        raise MalformedEnvelope
    header = RecordHeader(VERSION, event_id, sender, recipient, schema, dek_id, topic, nonce)
    return header, pos


@dataclass(frozen=True, slots=True)
class Bundle:
    """A parsed signed DEK bundle."""

    kem: KemAlg
    sender: str
    recipient: str
    dek_id: bytes
    created_at: int
    signer_key_id: str
    recipient_key_id: str
    sealed_dek: bytes
    signature: bytes
    signed: bytes  # every byte before the signature
    context: bytes  # every byte before the sealed-DEK length field


def bundle_context(
    *,
    kem: KemAlg,
    sender: bytes,
    recipient: bytes,
    dek_id: bytes,
    created_at: int,
    signer_key_id: str,
    recipient_key_id: str,
) -> bytes:
    """The bundle's fixed fields: the HPKE ``info`` and the start of the signed bytes."""
    return b"".join(
        (
            BUNDLE_MAGIC,
            bytes([VERSION]),
            _SUITE.pack(kem.hpke_id, HPKE_KDF_ID, HPKE_AEAD_ID),
            _str8(sender),
            _str8(recipient),
            dek_id,
            _U64.pack(created_at),
            bytes.fromhex(signer_key_id),
            bytes.fromhex(recipient_key_id),
        )
    )


def hpke_info(context: bytes) -> bytes:
    return HPKE_INFO_LABEL + context


def signature_input(signed: bytes) -> bytes:
    return SIGNATURE_LABEL + signed


def assemble_bundle(context: bytes, sealed_dek: bytes) -> bytes:
    """The signed part of a bundle: context, then the length-prefixed sealed DEK."""
    return context + _U16.pack(len(sealed_dek)) + sealed_dek


def parse_bundle(data: bytes) -> Bundle:
    if not isinstance(data, bytes):
        raise MalformedEnvelope
    _check_magic(data, BUNDLE_MAGIC)
    r = _Reader(data)
    r.pos = len(BUNDLE_MAGIC) + 1
    kem_id, kdf_id, aead_id = _SUITE.unpack(r.take(_SUITE.size))
    kem = KemAlg.from_hpke_id(kem_id)
    if kem is None or kdf_id != HPKE_KDF_ID or aead_id != HPKE_AEAD_ID:
        raise MalformedEnvelope
    sender, recipient = r.ident(), r.ident()
    dek_id = r.take(DEK_ID_LEN)
    (created_at,) = _U64.unpack(r.take(_U64.size))
    signer_key_id = r.take(KEY_ID_LEN).hex()
    recipient_key_id = r.take(KEY_ID_LEN).hex()
    context_end = r.pos
    (sealed_len,) = _U16.unpack(r.take(_U16.size))
    if sealed_len != kem.enc_len + DEK_LEN + AEAD_TAG_LEN:
        raise MalformedEnvelope
    sealed_dek = r.take(sealed_len)
    signed_end = r.pos
    signature = r.take(ED25519_SIG_LEN)
    if r.pos != len(data):
        raise MalformedEnvelope
    return Bundle(
        kem=kem,
        sender=sender,
        recipient=recipient,
        dek_id=dek_id,
        created_at=created_at,
        signer_key_id=signer_key_id,
        recipient_key_id=recipient_key_id,
        sealed_dek=sealed_dek,
        signature=signature,
        signed=data[:signed_end],
        context=data[:context_end],
    )
