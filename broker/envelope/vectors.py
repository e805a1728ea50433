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
from broker.crypto import KemAlg, KemPrivateKey, KemPublicKey, SigningKey, hpke_open, hpke_seal
from broker.envelope._keytypes import (
    KeyAlg,
    KeyInfo,
    KeyStatus,
    SigningIdentity,
    compute_key_id,
)
from broker.envelope._open import Opener
from broker.envelope._seal import Sealer
from broker.envelope._wire import (
    assemble_bundle,
    bundle_context,
    hpke_info,
    parse_bundle,
    parse_record,
    signature_input,
)
from broker.errors import EnvelopeError, KeyNotFound

__all__ = ["StaticKeys", "generate", "main", "vector_path"]

CREATED_AT: Final = 1_790_000_000  # 2026-09-21T15:06:40Z, the fixed clock of every vector
SENDER: Final = "wmp"
RECIPIENT: Final = "worker"
OTHER: Final = "gmp"  # a third party, for the invalid vectors' keys and bundles
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
    """A fixed, in-memory ``KeyResolver`` for vectors (sender signs, recipient opens).

    Besides the two keys every valid vector uses, it holds the keys the invalid vectors need
    (``others``): another party's encryption key, a revoked encryption key of the recipient
    (whose private half it still holds), and the sender's retired and expired signing keys.
    """

    def __init__(self, kem: KemAlg) -> None:
        at = datetime.fromtimestamp(CREATED_AT, UTC)
        self.sign = SigningKey.from_raw(_material("sender-ed25519", 32))
        self.kem = KemPrivateKey(kem, _material(f"recipient-{kem.value}", kem.private_len))
        self.other_kem = KemPrivateKey(kem, _material(f"other-{kem.value}", kem.private_len))
        self.revoked_kem = KemPrivateKey(
            kem, _material(f"recipient-revoked-{kem.value}", kem.private_len)
        )
        self.retired_sign = SigningKey.from_raw(_material("sender-retired-ed25519", 32))
        self.expired_sign = SigningKey.from_raw(_material("sender-expired-ed25519", 32))
        self.sign_info = _info(SENDER, KeyAlg.ED25519, self.sign.public_raw(), at)
        alg = KeyAlg(kem.value)
        self.kem_info = _info(RECIPIENT, alg, self.kem.public_raw(), at)
        self.other_kem_info = _info(OTHER, alg, self.other_kem.public_raw(), at)
        self.revoked_kem_info = _info(
            RECIPIENT, alg, self.revoked_kem.public_raw(), at, status=KeyStatus.REVOKED
        )
        self.retired_sign_info = _info(
            SENDER, KeyAlg.ED25519, self.retired_sign.public_raw(), at, status=KeyStatus.RETIRED
        )
        # not_after = the vectors' clock: no longer live at created_at (live means t < not_after)
        self.expired_sign_info = _info(
            SENDER, KeyAlg.ED25519, self.expired_sign.public_raw(), at, not_after=at
        )
        self.others: tuple[tuple[KeyInfo, bytes], ...] = (
            (self.other_kem_info, self.other_kem.raw()),
            (self.revoked_kem_info, self.revoked_kem.raw()),
            (self.retired_sign_info, self.retired_sign.raw()),
            (self.expired_sign_info, self.expired_sign.raw()),
        )

    def public_key(self, key_id: str) -> KeyInfo | None:
        known = (self.sign_info, self.kem_info, *(info for info, _ in self.others))
        return {i.key_id: i for i in known}.get(key_id)

    def current_signing_key(self, party: str) -> SigningIdentity:
        if party != SENDER:
            raise KeyNotFound(f"no signing key for party {party}")
        return SigningIdentity(self.sign_info, self.sign)

    def current_encryption_key(self, party: str) -> KeyInfo:
        if party != RECIPIENT:
            raise KeyNotFound(f"no encryption key for party {party}")
        return self.kem_info

    def decryption_key(self, key_id: str) -> KemPrivateKey | None:
        held = {self.kem_info.key_id: self.kem, self.revoked_kem_info.key_id: self.revoked_kem}
        return held.get(key_id)


def _info(
    party: str,
    alg: KeyAlg,
    public: bytes,
    at: datetime,
    *,
    status: KeyStatus = KeyStatus.ACTIVE,
    not_after: datetime | None = None,
) -> KeyInfo:
    return KeyInfo(compute_key_id(alg, public), party, alg, public, at, status, not_after)


def vector_path(directory: Path, kem: KemAlg) -> Path:
    return directory / f"envelope-v1-{kem.value}.json"


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def _opens(keys: StaticKeys, value: bytes, bundle: bytes | None) -> bytes:
    opener = Opener(RECIPIENT, keys, clock=lambda: float(CREATED_AT))
    return opener.open(value, bundle).payload


_DEK: Final = _material("dek", 32)
_DEK_ID: Final = _material("dek-id", 16)
_Case = tuple[bytes, bytes | None, str | None]  # value, bundle, the topic the receiver expects


def _rebundle(
    context: bytes, signer: SigningKey, seal_to: KemPrivateKey, info: bytes, old: str | None
) -> bytes:
    """A bundle of ``context`` whose DEK is sealed to ``seal_to`` under ``info`` and signed by
    ``signer``. HPKE is random, so an ``old`` one's sealed DEK is kept if it still opens so."""
    sealed = None
    if old is not None:
        try:
            parsed = parse_bundle(bytes.fromhex(old))
            if parsed.context == context and hpke_open(seal_to, parsed.sealed_dek, info) == _DEK:
                sealed = parsed.sealed_dek
        except (EnvelopeError, ValueError):
            pass
    if sealed is None:
        sealed = hpke_seal(KemPublicKey(seal_to.alg, seal_to.public_raw()), _DEK, info)
    signed = assemble_bundle(context, sealed)
    return signed + signer.sign(signature_input(signed))


def _signed_cases(keys: StaticKeys, old: dict[str, str | None]) -> dict[str, bytes]:
    """Bundles that are validly signed yet fail a later check of schemas/envelope.md §6 (so
    a decoder must make that check, not lean on the signature), each on record 0."""
    kem = keys.kem.alg

    def ctx(
        sender: str = SENDER, signer: KeyInfo | None = None, rkey: KeyInfo | None = None
    ) -> bytes:
        return bundle_context(
            kem=kem,
            sender=sender.encode(),
            recipient=RECIPIENT.encode(),
            dek_id=_DEK_ID,
            created_at=CREATED_AT,
            signer_key_id=(signer or keys.sign_info).key_id,
            recipient_key_id=(rkey or keys.kem_info).key_id,
        )

    specs: dict[str, tuple[bytes, SigningKey, KemPrivateKey, bytes | None]] = {
        "bundle: sender is another party (validly signed)": (
            ctx(sender=OTHER),
            keys.sign,
            keys.kem,
            None,
        ),
        "bundle: signer key retired (validly signed by it)": (
            ctx(signer=keys.retired_sign_info),
            keys.retired_sign,
            keys.kem,
            None,
        ),
        "bundle: signer key past its not_after (validly signed by it)": (
            ctx(signer=keys.expired_sign_info),
            keys.expired_sign,
            keys.kem,
            None,
        ),
        "bundle: recipient_key_id of another party (validly signed)": (
            ctx(rkey=keys.other_kem_info),
            keys.sign,
            keys.other_kem,
            None,
        ),
        "bundle: recipient_key_id of a revoked key (validly signed)": (
            ctx(rkey=keys.revoked_kem_info),
            keys.sign,
            keys.revoked_kem,
            None,
        ),
        "bundle: DEK sealed to a key other than recipient_key_id (validly signed)": (
            ctx(),
            keys.sign,
            keys.other_kem,
            None,
        ),
        "bundle: DEK sealed with HPKE info lacking its label (validly signed)": (
            ctx(),
            keys.sign,
            keys.kem,
            ctx(),
        ),
    }
    return {
        name: _rebundle(c, signer, to, hpke_info(c) if info is None else info, old.get(name))
        for name, (c, signer, to, info) in specs.items()
    }


def _invalid(
    keys: StaticKeys, value: bytes, bundle: bytes, old: dict[str, str | None]
) -> list[dict[str, str | None]]:
    header, ct_start = parse_record(value)
    parsed = parse_bundle(bundle)
    context_len = len(parsed.context)
    dek_id_at = 11 + 1 + len(SENDER) + 1 + len(RECIPIENT)
    signer_id_at = context_len - 32
    recipient_at = 5 + 1 + len(header.event_id) + 1 + len(SENDER) + 1
    short = len(parsed.sealed_dek) - 1
    cases: dict[str, _Case] = {
        "record: unknown magic": (b"XCRD" + value[4:], bundle, None),
        "record: unsupported version 2": (value[:4] + b"\x02" + value[5:], bundle, None),
        "record: truncated inside the header": (value[:20], bundle, None),
        "record: ciphertext shorter than the tag": (value[: ct_start + 15], bundle, None),
        "record: recipient is another party": (_flip(value, recipient_at), bundle, None),
        "record: topic is not the topic it was read from": (
            value,
            bundle,
            f"accord.ingress.{OTHER}",
        ),
        "record: event id altered": (_flip(value, 7), bundle, None),
        "record: nonce altered": (_flip(value, ct_start - 1), bundle, None),
        "record: ciphertext altered": (_flip(value, ct_start), bundle, None),
        "record: tag altered": (_flip(value, len(value) - 1), bundle, None),
        "bundle: unsupported version 2": (value, bundle[:4] + b"\x02" + bundle[5:], None),
        "bundle: unknown kem_id 0x0021": (value, bundle[:5] + b"\x00\x21" + bundle[7:], None),
        "bundle: unknown kdf_id 0x0003": (value, bundle[:7] + b"\x00\x03" + bundle[9:], None),
        "bundle: sealed_len one short (the sealed DEK cut to match)": (
            value,
            parsed.context
            + short.to_bytes(2, "big")
            + parsed.sealed_dek[:short]
            + parsed.signature,
            None,
        ),
        "bundle: trailing byte": (value, bundle + b"\x00", None),
        "bundle: DEK id differs from the record's": (value, _flip(bundle, dek_id_at), None),
        "bundle: signer key id unknown": (value, _flip(bundle, signer_id_at), None),
        "bundle: sealed DEK altered": (value, _flip(bundle, len(bundle) - 65), None),
        "bundle: signature altered": (value, _flip(bundle, len(bundle) - 1), None),
    }
    for name, signed in _signed_cases(keys, old).items():
        cases[name] = (value, signed, None)
    cases["record: no bundle and no cached DEK"] = (value, None, None)
    out: list[dict[str, str | None]] = []
    for name, (v, b, topic) in cases.items():
        try:
            Opener(RECIPIENT, keys, clock=lambda: float(CREATED_AT)).open(v, b, topic=topic)
        except EnvelopeError as exc:
            hex_b = None if b is None else b.hex()
            out.append(
                {
                    "name": name,
                    "value": v.hex(),
                    "bundle": hex_b,
                    "topic": topic,
                    "error": type(exc).__name__,
                }
            )
        else:
            raise AssertionError(f"invalid vector {name!r} opened")
    return out


def generate(kem: KemAlg, existing: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the vector document for ``kem``; reuse ``existing``'s HPKE output if still valid."""
    keys = StaticKeys(kem)
    fixed = iter((_DEK, _DEK_ID))
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
    old_invalid = {c["name"]: c["bundle"] for c in (existing or {}).get("invalid", [])}
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
            "by opening it with recipient.kem_private. other_keys: further keys of the "
            "receiver's directory, for the invalid cases (sender and recipient keys are active, "
            "with no not_after); invalid[].topic: the topic the receiver expects (null: none)."
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
        "other_keys": [_key_doc(info, private) for info, private in keys.others],
        "dek": _DEK.hex(),
        "dek_id": _DEK_ID.hex(),
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
        "invalid": _invalid(keys, sealed[0].value, bundle, old_invalid),
    }


def _key_doc(info: KeyInfo, private: bytes) -> dict[str, Any]:
    return {
        "party": info.party,
        "alg": info.alg.value,
        "key_id": info.key_id,
        "public": info.public.hex(),
        "private": private.hex(),
        "status": info.status.value,
        "not_after": None if info.not_after is None else int(info.not_after.timestamp()),
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
