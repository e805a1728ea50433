"""The checked-in test vectors (schemas/vectors/) decode, and regenerate byte-for-byte.

``test_independent_decoder_*`` reads the vectors the way another implementation would: from
schemas/envelope.md alone (HPKE base mode and the X-Wing combiner written out with hashlib
and raw primitives), without using broker.envelope to parse or open anything.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.crypto import KemAlg, KemPrivateKey
from broker.envelope import Opener
from broker.envelope._keytypes import KeyAlg, KeyInfo, KeyStatus, SigningIdentity
from broker.envelope._wire import parse_bundle
from broker.envelope.vectors import CREATED_AT, StaticKeys, generate, main, vector_path
from broker.errors import EnvelopeError, KeyNotFound

VECTORS = Path(__file__).resolve().parents[3] / "schemas" / "vectors"
KEMS = list(KemAlg)


def _load(kem: KemAlg) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(vector_path(VECTORS, kem).read_text("utf-8"))
    return doc


@pytest.mark.parametrize("kem", KEMS)
def test_checked_in_vectors_open_to_their_plaintexts(kem: KemAlg) -> None:
    doc = _load(kem)
    opener = Opener("worker", StaticKeys(kem), clock=lambda: float(CREATED_AT))
    bundle = bytes.fromhex(doc["bundle"]["bytes"])
    for rec in doc["records"]:
        opened = opener.open(bytes.fromhex(rec["value"]), bundle, topic=rec["topic"])
        assert opened.payload == bytes.fromhex(rec["payload"])
        assert opened.event_id == rec["event_id"]


class _DocKeys:
    """A key directory built from a vector file alone (sender, recipient, other_keys), as
    another implementation would: the file must say every key's party, status and expiry."""

    def __init__(self, doc: dict[str, Any]) -> None:
        at = datetime.fromtimestamp(doc["created_at"], UTC)
        kem = KemAlg(doc["hpke"]["kem"])
        main = [
            {**doc["sender"], "alg": "ed25519", "public": doc["sender"]["ed25519_public"]},
            {**doc["recipient"], "alg": kem.value, "public": doc["recipient"]["kem_public"],
             "private": doc["recipient"]["kem_private"]},
        ]  # fmt: skip
        self.infos: dict[str, KeyInfo] = {}
        self.private: dict[str, KemPrivateKey] = {}
        for k in main + doc["other_keys"]:
            na = k.get("not_after")
            self.infos[k["key_id"]] = KeyInfo(
                k["key_id"], k["party"], KeyAlg(k["alg"]), bytes.fromhex(k["public"]), at,
                KeyStatus(k.get("status", "active")),
                None if na is None else datetime.fromtimestamp(na, UTC),
            )  # fmt: skip
            if k["party"] == "worker" and k["alg"] != "ed25519":
                self.private[k["key_id"]] = KemPrivateKey(kem, bytes.fromhex(k["private"]))

    def public_key(self, key_id: str) -> KeyInfo | None:
        return self.infos.get(key_id)

    def current_signing_key(self, party: str) -> SigningIdentity:
        raise KeyNotFound(party)

    def current_encryption_key(self, party: str) -> KeyInfo:
        raise KeyNotFound(party)

    def decryption_key(self, key_id: str) -> KemPrivateKey | None:
        return self.private.get(key_id)


@pytest.mark.parametrize("kem", KEMS)
@pytest.mark.parametrize("directory", ["generator's", "the file's"])
def test_invalid_vectors_fail_with_the_listed_error(kem: KemAlg, directory: str) -> None:
    doc = _load(kem)
    assert len(doc["invalid"]) >= 10
    for case in doc["invalid"]:
        keys = StaticKeys(kem) if directory == "generator's" else _DocKeys(doc)
        opener = Opener("worker", keys, clock=lambda: float(CREATED_AT))
        bundle = None if case["bundle"] is None else bytes.fromhex(case["bundle"])
        with pytest.raises(EnvelopeError) as info:
            opener.open(bytes.fromhex(case["value"]), bundle, topic=case["topic"])
        assert type(info.value).__name__ == case["error"], case["name"]


# Every check of schemas/envelope.md §6 that an invalid vector exercises, by the case's name.
SECTION_6 = {
    "record: recipient is another party": "WrongRecipient",
    "record: topic is not the topic it was read from": "WrongRecipient",
    "bundle: unknown kem_id 0x0021": "MalformedEnvelope",
    "bundle: unknown kdf_id 0x0003": "MalformedEnvelope",
    "bundle: sealed_len one short (the sealed DEK cut to match)": "MalformedEnvelope",
    "bundle: sender is another party (validly signed)": "TamperedEnvelope",
    "bundle: signer key retired (validly signed by it)": "KeyRejected",
    "bundle: signer key past its not_after (validly signed by it)": "KeyRejected",
    "bundle: recipient_key_id of another party (validly signed)": "WrongRecipient",
    "bundle: recipient_key_id of a revoked key (validly signed)": "KeyRejected",
    "bundle: DEK sealed to a key other than recipient_key_id (validly signed)": "DekUnopenable",
    "bundle: DEK sealed with HPKE info lacking its label (validly signed)": "DekUnopenable",
}


@pytest.mark.parametrize("kem", KEMS)
def test_invalid_vectors_cover_the_later_checks_of_section_6(kem: KemAlg) -> None:
    """Wrong recipient, topic and recipient key, unknown suites, a wrong sealed_len, keys
    not live, a bundle of another sender and an unopenable DEK each have a vector."""
    cases = {c["name"]: c["error"] for c in _load(kem)["invalid"]}
    assert {name: cases.get(name) for name in SECTION_6} == SECTION_6


@pytest.mark.parametrize("kem", KEMS)
def test_validly_signed_invalid_vectors_verify_under_the_key_they_name(kem: KemAlg) -> None:
    """Those cases fail only at a check after the signature, so a decoder that stopped at
    the signature would accept them."""
    doc = _load(kem)
    keys = _DocKeys(doc)
    signed = [c for c in doc["invalid"] if "(validly signed" in c["name"]]
    assert len(signed) == 7
    for case in signed:
        bundle = bytes.fromhex(case["bundle"])
        signer = keys.infos[parse_bundle(bundle).signer_key_id]
        ed25519.Ed25519PublicKey.from_public_bytes(signer.public).verify(
            bundle[-64:], b"accord/dek-bundle/v1\x00" + bundle[:-64]
        )


@pytest.mark.parametrize("kem", KEMS)
def test_regenerating_gives_identical_bytes(kem: KemAlg) -> None:
    existing = _load(kem)
    assert generate(kem, existing) == existing
    fresh = generate(kem)  # a new HPKE encapsulation: only the random parts differ
    assert fresh["records"] == existing["records"]
    assert fresh["bundle"]["context"] == existing["bundle"]["context"]
    assert fresh["bundle"]["bytes"] != existing["bundle"]["bytes"]


def test_vectors_script_check_mode_passes_on_the_checked_in_files() -> None:
    assert main(["--out", str(VECTORS), "--check"]) == 0


# An independent decoder, written from schemas/envelope.md.


def _labeled(suite_id: bytes) -> tuple[Any, Any]:
    def extract(salt: bytes, label: bytes, ikm: bytes) -> bytes:
        return hmac.new(salt or bytes(32), b"HPKE-v1" + suite_id + label + ikm, "sha256").digest()

    def expand(prk: bytes, label: bytes, info: bytes, n: int) -> bytes:
        full = struct.pack(">H", n) + b"HPKE-v1" + suite_id + label + info
        out, block, i = b"", b"", 1
        while len(out) < n:
            block = hmac.new(prk, block + full + bytes([i]), "sha256").digest()
            out, i = out + block, i + 1
        return out[:n]

    return extract, expand


def _decap(kem: str, private: bytes, enc: bytes) -> bytes:
    if kem == "mlkem768-x25519":
        m = mlkem.MLKEM768PrivateKey.from_seed_bytes(private[:64])
        x = x25519.X25519PrivateKey.from_private_bytes(private[64:])
        ss_m = m.decapsulate(enc[:1088])
        ct_x = enc[1088:]
        ss_x = x.exchange(x25519.X25519PublicKey.from_public_bytes(ct_x))
        pk_x = x.public_key().public_bytes_raw()
        return hashlib.sha3_256(ss_m + ss_x + ct_x + pk_x + b"\\.//^\\").digest()
    # DHKEM(X25519, HKDF-SHA256), RFC 9180 §4.1
    x = x25519.X25519PrivateKey.from_private_bytes(private)
    dh = x.exchange(x25519.X25519PublicKey.from_public_bytes(enc))
    extract, expand = _labeled(b"KEM\x00\x20")
    kem_context = enc + x.public_key().public_bytes_raw()
    return bytes(expand(extract(b"", b"eae_prk", dh), b"shared_secret", kem_context, 32))


def _str8(data: bytes, pos: int) -> tuple[str, int]:
    n = data[pos]
    return data[pos + 1 : pos + 1 + n].decode("ascii"), pos + 1 + n


@pytest.mark.parametrize("kem", KEMS)
def test_independent_decoder_reads_the_vectors(kem: KemAlg) -> None:
    doc = _load(kem)
    bundle = bytes.fromhex(doc["bundle"]["bytes"])
    assert bundle[:5] == b"ACDK\x01"
    kem_id, kdf_id, aead_id = struct.unpack(">HHH", bundle[5:11])
    assert (f"0x{kem_id:04x}", kdf_id, aead_id) == (doc["hpke"]["kem_id"], 1, 2)
    sender, pos = _str8(bundle, 11)
    recipient, pos = _str8(bundle, pos)
    dek_id = bundle[pos : pos + 16]
    (created_at,) = struct.unpack(">Q", bundle[pos + 16 : pos + 24])
    signer_id, rkey_id = bundle[pos + 24 : pos + 40].hex(), bundle[pos + 40 : pos + 56].hex()
    context_end = pos + 56
    (sealed_len,) = struct.unpack(">H", bundle[context_end : context_end + 2])
    sealed = bundle[context_end + 2 : context_end + 2 + sealed_len]
    signature = bundle[context_end + 2 + sealed_len :]
    assert len(signature) == 64
    assert (sender, recipient, created_at) == ("wmp", "worker", doc["created_at"])
    assert (signer_id, rkey_id) == (doc["sender"]["key_id"], doc["recipient"]["key_id"])

    # Key ids are fingerprints of the public keys.
    for alg, pub, kid in (
        ("ed25519", doc["sender"]["ed25519_public"], signer_id),
        (doc["hpke"]["kem"], doc["recipient"]["kem_public"], rkey_id),
    ):
        name = alg.encode()
        fp = hashlib.sha256(b"accord/key-id/v1\x00" + bytes([len(name)]) + name)
        fp.update(bytes.fromhex(pub))
        assert fp.digest()[:16].hex() == kid

    # Signature over the label and every byte before it.
    ed25519.Ed25519PublicKey.from_public_bytes(
        bytes.fromhex(doc["sender"]["ed25519_public"])
    ).verify(signature, b"accord/dek-bundle/v1\x00" + bundle[: -len(signature)])

    # HPKE base mode, single shot, info = label || context.
    enc_len = 1120 if kem is KemAlg.MLKEM768_X25519 else 32
    enc, ct = sealed[:enc_len], sealed[enc_len:]
    shared = _decap(doc["hpke"]["kem"], bytes.fromhex(doc["recipient"]["kem_private"]), enc)
    extract, expand = _labeled(b"HPKE" + struct.pack(">HHH", kem_id, 1, 2))
    info = b"accord/dek/v1\x00" + bundle[:context_end]
    ks_context = b"\x00" + extract(b"", b"psk_id_hash", b"") + extract(b"", b"info_hash", info)
    secret = extract(shared, b"secret", b"")
    key = expand(secret, b"key", ks_context, 32)
    base_nonce = expand(secret, b"base_nonce", ks_context, 12)
    dek = AESGCM(key).decrypt(base_nonce, ct, b"")
    assert dek.hex() == doc["dek"]

    # Records: AES-256-GCM(DEK, nonce, payload, AD = every byte before the ciphertext).
    for i, rec in enumerate(doc["records"]):
        value = bytes.fromhex(rec["value"])
        assert value[:5] == b"ACRD\x01"
        pos, fields = 5, []
        for _ in range(4):
            text, pos = _str8(value, pos)
            fields.append(text)
        assert fields == [rec["event_id"], "wmp", "worker", rec["schema"]]
        assert value[pos : pos + 16] == dek_id
        topic, pos = _str8(value, pos + 16)
        assert topic == rec["topic"]
        nonce = value[pos : pos + 12]
        assert nonce == bytes(4) + struct.pack(">Q", i)
        ad = value[: pos + 12]
        assert ad.hex() == rec["associated_data"]
        assert AESGCM(dek).decrypt(nonce, value[pos + 12 :], ad).hex() == rec["payload"]
