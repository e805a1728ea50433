"""Sealing: one data key (DEK) per recipient, reused for a bounded number of records and time.

Public-key work (an HPKE seal of the DEK plus an Ed25519 signature over the bundle) happens
once per DEK; every record costs one AES-256-GCM encryption. Nonces are a per-DEK counter, so
they never repeat under one DEK: a DEK is random, lives only in this object's memory, is never
persisted or shared with another Sealer, is replaced after ``dek_max_records`` (< 2**32)
records, and is replaced if the process forks (a child would otherwise continue the parent's
counter under the same key).
"""

from __future__ import annotations

import os
import struct
import threading
import time
from collections.abc import Callable
from typing import Final, NamedTuple

from broker.config import EnvelopeSettings
from broker.crypto import Aead, KemAlg, KemPublicKey, hpke_seal, random_bytes
from broker.envelope._keytypes import KeyInfo, KeyResolver, SigningIdentity
from broker.envelope._wire import (
    DEK_ID_LEN,
    DEK_LEN,
    VERSION,
    RecordHeader,
    assemble_bundle,
    bundle_context,
    check_identifier,
    hpke_info,
    record_prefix,
    signature_input,
)
from broker.errors import KeyNotFound, KeyRejected

__all__ = ["DEK_BUNDLE_HEADER", "Clock", "SealedRecord", "Sealer"]

#: Kafka record header that carries the signed DEK bundle next to every record value.
DEK_BUNDLE_HEADER: Final = "accord-dek"

Clock = Callable[[], float]
_NONCE_PREFIX: Final = b"\x00\x00\x00\x00"
_U64: Final = struct.Struct(">Q")


class SealedRecord(NamedTuple):
    """A sealed record: ``value`` goes in the Kafka record value, ``headers`` in its headers."""

    value: bytes
    dek_bundle: bytes
    header: RecordHeader

    @property
    def headers(self) -> list[tuple[str, bytes]]:
        return [(DEK_BUNDLE_HEADER, self.dek_bundle)]


class _Dek:
    __slots__ = (
        "aead",
        "bundle",
        "count",
        "created",
        "dek_id",
        "pid",
        "prefixes",
        "recipient_key_id",
        "signer_key_id",
    )

    def __init__(
        self, dek: bytes, dek_id: bytes, bundle: bytes, *, created: float, signer: str, rkey: str
    ) -> None:
        self.aead = Aead(dek)
        self.dek_id = dek_id
        self.bundle = bundle
        self.created = created
        self.signer_key_id = signer
        self.recipient_key_id = rkey
        self.count = 0
        self.pid = os.getpid()
        # Encoded (sender, recipient, schema, dek id, topic) pieces, by (schema, topic).
        self.prefixes: dict[tuple[str, str], tuple[bytes, bytes]] = {}


class Sealer:
    """Seals records from ``party``; holds the current DEK per recipient and rotates it.

    ``clock`` returns seconds since the epoch (injectable for tests); ``random`` returns
    CSPRNG bytes and is injectable only so that test vectors can be reproduced.
    """

    def __init__(
        self,
        party: str,
        keys: KeyResolver,
        settings: EnvelopeSettings | None = None,
        *,
        clock: Clock = time.time,
        random: Callable[[int], bytes] = random_bytes,
    ) -> None:
        self.party = party
        self._sender = check_identifier("sender", party)
        self._keys = keys
        self._settings = settings or EnvelopeSettings()
        self._kem = KemAlg(self._settings.kem.value)
        self._clock = clock
        self._random = random
        self._deks: dict[str, _Dek] = {}
        self._valid_routes: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()

    def can_seal_to(self, recipient: str) -> bool:
        """Whether ``recipient`` has a live encryption key of the configured KEM now."""
        try:
            self._recipient_key(recipient, self._clock())
        except KeyRejected:
            return False
        return True

    def can_sign(self) -> bool:
        """Whether this sender has a live signing key now (nothing can be sealed without)."""
        try:
            self._signer(self._clock())
        except KeyRejected:
            return False
        return True

    def seal(
        self, payload: bytes, *, event_id: str, recipient: str, schema: str, topic: str
    ) -> SealedRecord:
        """Encrypt ``payload`` (canonical bytes) to ``recipient`` for ``topic``."""
        eid = check_identifier("event_id", event_id)
        if (recipient, schema, topic) not in self._valid_routes:
            check_identifier("recipient", recipient)
            check_identifier("schema", schema)
            check_identifier("topic", topic)
            self._valid_routes.add((recipient, schema, topic))
        with self._lock:
            dek = self._current(recipient)
            pieces = dek.prefixes.get((schema, topic))
            if pieces is None:
                pieces = self._pieces(recipient, schema, topic, dek.dek_id)
                dek.prefixes[(schema, topic)] = pieces
            nonce = _NONCE_PREFIX + _U64.pack(dek.count)
            dek.count += 1
        head = pieces[0] + bytes([len(eid)]) + eid + pieces[1] + nonce
        value = head + dek.aead.seal(nonce, payload, head)
        header = RecordHeader(
            VERSION, event_id, self.party, recipient, schema, dek.dek_id, topic, nonce
        )
        return SealedRecord(value=value, dek_bundle=dek.bundle, header=header)

    def rotate(self, recipient: str | None = None) -> None:
        """Drop the current DEK (for one recipient or all); the next seal makes a new one."""
        with self._lock:
            if recipient is None:
                self._deks.clear()
            else:
                self._deks.pop(recipient, None)

    def _pieces(
        self, recipient: str, schema: str, topic: str, dek_id: bytes
    ) -> tuple[bytes, bytes]:
        full = record_prefix(
            event_id=b"",
            sender=self._sender,
            recipient=check_identifier("recipient", recipient),
            schema=check_identifier("schema", schema),
            dek_id=dek_id,
            topic=check_identifier("topic", topic),
        )
        # Split around the (empty) event id so each record only splices its own id in.
        return full[:5], full[6:]

    def _current(self, recipient: str) -> _Dek:
        now = self._clock()
        signer = self._signer(now)
        rkey = self._recipient_key(recipient, now)
        dek = self._deks.get(recipient)
        if (
            dek is None
            or dek.count >= self._settings.dek_max_records
            or not dek.created <= now < dek.created + self._settings.dek_max_seconds
            or dek.pid != os.getpid()
            or dek.signer_key_id != signer.info.key_id
            or dek.recipient_key_id != rkey.key_id
        ):
            dek = self._new_dek(recipient, signer, rkey, now)
            self._deks[recipient] = dek
        return dek

    def _signer(self, now: float) -> SigningIdentity:
        try:
            signer = self._keys.current_signing_key(self.party)
        except KeyNotFound as exc:
            raise KeyRejected from exc
        if not signer.info.is_live_ts(now) or signer.info.party != self.party:
            raise KeyRejected
        return signer

    def _recipient_key(self, recipient: str, now: float) -> KeyInfo:
        try:
            info = self._keys.current_encryption_key(recipient)
        except KeyNotFound as exc:
            raise KeyRejected from exc
        # Never downgrade: the recipient's key must use the configured KEM.
        if info.party != recipient or info.alg.value != self._kem.value or not info.is_live_ts(now):
            raise KeyRejected
        return info

    def _new_dek(self, recipient: str, signer: SigningIdentity, rkey: KeyInfo, now: float) -> _Dek:
        dek = self._random(DEK_LEN)
        dek_id = self._random(DEK_ID_LEN)
        if len(dek) != DEK_LEN or len(dek_id) != DEK_ID_LEN:
            raise ValueError("random source returned the wrong length")
        context = bundle_context(
            kem=self._kem,
            sender=self._sender,
            recipient=check_identifier("recipient", recipient),
            dek_id=dek_id,
            created_at=int(now),
            signer_key_id=signer.info.key_id,
            recipient_key_id=rkey.key_id,
        )
        sealed = hpke_seal(KemPublicKey(self._kem, rkey.public), dek, hpke_info(context))
        signed = assemble_bundle(context, sealed)
        bundle = signed + signer.key.sign(signature_input(signed))
        return _Dek(dek, dek_id, bundle, created=now, signer=signer.info.key_id, rkey=rkey.key_id)
