"""Generate (or check) the envelope test vectors in ``schemas/vectors/``.

``python -m broker.envelope.vectors`` writes one file per KEM; ``--check`` only compares.
Everything but the HPKE encapsulation is deterministic (fixed keys, DEK, DEK id, clock; the
nonce is a counter; Ed25519 signatures are deterministic), so regenerating gives identical
record values. HPKE is randomised: an existing file's bundle is kept when its fixed fields
still match and it still opens, so regenerating leaves the files byte-for-byte unchanged.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from broker.config import EnvelopeSettings, KemSuite
from broker.crypto import KemAlg, KemPrivateKey, SigningKey
from broker.envelope._keytypes import (
    KeyAlg,
    KeyInfo,
    SigningIdentity,
    compute_key_id,
)
from broker.envelope._open import Opener
from broker.envelope._seal import Sealer
from broker.envelope._wire import hpke_info, parse_bundle, parse_record, signature_input
from broker.errors import EnvelopeError, KeyNotFound

__all__ = ["StaticKeys", "generate", "main", "vector_path"]

CREATED_AT: Final = 1_790_000_000  # 2026-09-21T15:06:40Z, the fixed clock of every vector
SENDER: Final = "wmp"
RECIPIENT: Final = "worker"
_RECORDS: Final = (
    (
        "6f1c2b8e-3d4a-4c5b-9e7f-0a1b2c3d4e5f",
        "contact-event.v1",
        "accord.ingress.wmp",
        b'{"event_id":"6f1c2b8e-3d4a-4c5b-9e7f-0a1b2c3d4e5f","sender":"wmp",'
        b'"summary":"synthetic test vector \xe2\x80\x94 no real person",'
        b'"type":"police.domestic_incident"}',
    ),
    ("7a2d3c9f-4e5b-4d6c-8f80-1b2c3d4e5f60", "contact-event.v1", "accord.ingress.wmp", b""),
    ("access:0001", "access-ack.v1", "accord.access", b'{"ok":true}'),
)


def _material(label: str, n: int) -> bytes:
    return hashlib.shake_256(f"accord test vector/{label}".encode()).digest(n)


class StaticKeys:
    """A fixed, in-memory ``KeyResolver`` for vectors (sender signs, recipient opens)."""

    def __init__(self, kem: KemAlg) -> None:
        at = datetime.fromtimestamp(CREATED_AT, UTC)
        self.sign = SigningKey.from_raw(_material("sender-ed25519", 32))
        self.kem = KemPrivateKey(kem, _material(f"recipient-{kem.value}", kem.private_len))
        sign_pub, kem_pub = self.sign.public_raw(), self.kem.public_raw()
        alg = KeyAlg(kem.value)
        self.sign_info = KeyInfo(
            compute_key_id(KeyAlg.ED25519, sign_pub), SENDER, KeyAlg.ED25519, sign_pub, at
        )
        self.kem_info = KeyInfo(compute_key_id(alg, kem_pub), RECIPIENT, alg, kem_pub, at)

    def public_key(self, key_id: str) -> KeyInfo | None:
        return {i.key_id: i for i in (self.sign_info, self.kem_info)}.get(key_id)

    def current_signing_key(self, party: str) -> SigningIdentity:
        if party != SENDER:
            raise KeyNotFound(f"no signing key for party {party}")
        return SigningIdentity(self.sign_info, self.sign)

    def current_encryption_key(self, party: str) -> KeyInfo:
        if party != RECIPIENT:
            raise KeyNotFound(f"no encryption key for party {party}")
        return self.kem_info

    def decryption_key(self, key_id: str) -> KemPrivateKey | None:
        return self.kem if key_id == self.kem_info.key_id else None


def vector_path(directory: Path, kem: KemAlg) -> Path:
    return directory / f"envelope-v1-{kem.value}.json"


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def _opens(keys: StaticKeys, value: bytes, bundle: bytes | None) -> bytes:
    opener = Opener(RECIPIENT, keys, clock=lambda: float(CREATED_AT))
    return opener.open(value, bundle).payload


def _invalid(keys: StaticKeys, value: bytes, bundle: bytes) -> list[dict[str, str | None]]:
    _, ct_start = parse_record(value)
    context_len = len(parse_bundle(bundle).context)
    dek_id_at = 11 + 1 + len(SENDER) + 1 + len(RECIPIENT)
    signer_id_at = context_len - 32
    cases: dict[str, tuple[bytes, bytes | None]] = {
        "record: unknown magic": (b"XCRD" + value[4:], bundle),
        "record: unsupported version 2": (value[:4] + b"\x02" + value[5:], bundle),
        "record: truncated inside the header": (value[:20], bundle),
        "record: ciphertext shorter than the tag": (value[: ct_start + 15], bundle),
        "record: event id altered": (_flip(value, 7), bundle),
        "record: nonce altered": (_flip(value, ct_start - 1), bundle),
        "record: ciphertext altered": (_flip(value, ct_start), bundle),
        "record: tag altered": (_flip(value, len(value) - 1), bundle),
        "bundle: unsupported version 2": (value, bundle[:4] + b"\x02" + bundle[5:]),
        "bundle: trailing byte": (value, bundle + b"\x00"),
        "bundle: DEK id differs from the record's": (value, _flip(bundle, dek_id_at)),
        "bundle: signer key id unknown": (value, _flip(bundle, signer_id_at)),
        "bundle: sealed DEK altered": (value, _flip(bundle, len(bundle) - 65)),
        "bundle: signature altered": (value, _flip(bundle, len(bundle) - 1)),
        "record: no bundle and no cached DEK": (value, None),
    }
    out: list[dict[str, str | None]] = []
    for name, (v, b) in cases.items():
        try:
            _opens(keys, v, b)
        except EnvelopeError as exc:
            hex_b = None if b is None else b.hex()
            out.append(
                {"name": name, "value": v.hex(), "bundle": hex_b, "error": type(exc).__name__}
            )
        else:
            raise AssertionError(f"invalid vector {name!r} opened")
    return out


def generate(kem: KemAlg, existing: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the vector document for ``kem``; reuse ``existing``'s HPKE output if still valid."""
    keys = StaticKeys(kem)
    fixed = iter((_material("dek", 32), _material("dek-id", 16)))
    settings = EnvelopeSettings(kem=KemSuite(kem.value))
    sealer = Sealer(
        SENDER, keys, settings, clock=lambda: float(CREATED_AT), random=lambda _n: next(fixed)
    )
    sealed = [
        sealer.seal(payload, event_id=eid, recipient=RECIPIENT, schema=schema, topic=topic)
        for eid, schema, topic, payload in _RECORDS
    ]
    bundle = sealed[0].dek_bundle
    context = parse_bundle(bundle).context
    if existing is not None:
        old = bytes.fromhex(existing.get("bundle", {}).get("bytes", ""))
        try:
            if parse_bundle(old).context == context:
                _opens(keys, sealed[0].value, old)
                bundle = old
        except EnvelopeError:
            pass
    parsed = parse_bundle(bundle)
    records = []
    for rec, (eid, schema, topic, payload) in zip(sealed, _RECORDS, strict=True):
        _, ct_start = parse_record(rec.value)
        records.append(
            {
                "event_id": eid,
                "schema": schema,
                "topic": topic,
                "payload": payload.hex(),
                "nonce": rec.header.nonce.hex(),
                "associated_data": rec.value[:ct_start].hex(),
                "value": rec.value.hex(),
            }
        )
    return {
        "description": (
            "Accord envelope v1 test vector (schemas/envelope.md). Fixed keys, DEK, DEK id and "
            "clock; the HPKE encapsulation in bundle.bytes is random, so a decoder checks it "
            "by opening it with recipient.kem_private."
        ),
        "version": 1,
        "hpke": {
            "mode": "base",
            "kem": kem.value,
            "kem_id": f"0x{kem.hpke_id:04x}",
            "kdf_id": "0x0001",
            "aead_id": "0x0002",
        },
        "sender": {
            "party": SENDER,
            "ed25519_private": keys.sign.raw().hex(),
            "ed25519_public": keys.sign_info.public.hex(),
            "key_id": keys.sign_info.key_id,
        },
        "recipient": {
            "party": RECIPIENT,
            "kem_private": keys.kem.raw().hex(),
            "kem_public": keys.kem_info.public.hex(),
            "key_id": keys.kem_info.key_id,
        },
        "dek": _material("dek", 32).hex(),
        "dek_id": _material("dek-id", 16).hex(),
        "created_at": CREATED_AT,
        "bundle": {
            "context": context.hex(),
            "hpke_info": hpke_info(context).hex(),
            "sealed_dek": parsed.sealed_dek.hex(),
            "signature_input": signature_input(parsed.signed).hex(),
            "signature": parsed.signature.hex(),
            "bytes": bundle.hex(),
        },
        "records": records,
        "invalid": _invalid(keys, sealed[0].value, bundle),
    }


def _dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m broker.envelope.vectors")
    parser.add_argument("--out", type=Path, default=Path("schemas/vectors"))
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args(argv)
    stale = []
    for kem in KemAlg:
        path = vector_path(args.out, kem)
        existing = json.loads(path.read_text("utf-8")) if path.exists() else None
        text = _dump(generate(kem, existing))
        if existing is not None and _dump(existing) == text:
            continue
        stale.append(path)
        if not args.check:
            args.out.mkdir(parents=True, exist_ok=True)
            path.write_text(text, "utf-8")
    for path in stale:
        sys.stdout.write(f"{'stale' if args.check else 'wrote'} {path}\n")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
