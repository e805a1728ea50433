"""Opening: verify the signed DEK bundle once, cache the DEK by id, check every record.

Checks, in order (``schemas/envelope.md`` §6): the value parses (``MalformedEnvelope``,
``UnsupportedVersion``); it is addressed to this party and, if given, arrived on the topic it
names (``WrongRecipient``); the DEK comes from the cache only if the record carries the very
bundle that was verified, else the bundle is verified afresh: it matches the header
(``TamperedEnvelope``), its signer is a known, live signing key of the sender
(``KeyRejected``), the signature holds (``BadSignature``), it is sealed to a live encryption key
this party holds (``WrongRecipient``/``KeyRejected``; with ``expired_own_keys``, also one of its
own past its expiry when the DEK was made before it) and HPKE opens (``DekUnopenable``, a
``TamperedEnvelope``).
Key status is re-checked on every record, so a revocation takes effect at once even for a
cached DEK. Then AES-GCM opens with the header as associated data (``TamperedEnvelope``) and
the replay guard sees the event id for the first time (``ReplayDetected``).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from broker.crypto import Aead, KemPrivateKey, VerifyKey, hpke_open
from broker.envelope._keytypes import KeyAlg, KeyInfo, KeyResolver, KeyStatus
from broker.envelope._seal import DEK_BUNDLE_HEADER, Clock
from broker.envelope._wire import (
    Bundle,
    RecordHeader,
    hpke_info,
    parse_bundle,
    parse_record,
    signature_input,
)
from broker.errors import (
    BadSignature,
    DekUnopenable,
    KeyRejected,
    MalformedEnvelope,
    ReplayDetected,
    TamperedEnvelope,
    WrongRecipient,
)

__all__ = ["InMemoryReplayGuard", "OpenedRecord", "Opener", "ReplayGuard", "read_header"]


class ReplayGuard(Protocol):
    """Remembers event ids already opened; the worker backs this by a changelog table."""

    def first_sighting(self, event_id: str) -> bool:
        """Record ``event_id``; ``True`` the first time it is seen, ``False`` afterwards."""
        ...


class InMemoryReplayGuard:
    """A bounded replay guard: remembers the most recent ``capacity`` event ids.

    An id older than the window is forgotten and would be accepted again; size the window to
    cover the records a consumer can be re-delivered (its uncommitted offsets and more).
    """

    def __init__(self, capacity: int = 100_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self._capacity = capacity
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def first_sighting(self, event_id: str) -> bool:
        with self._lock:
            if event_id in self._seen:
                self._seen.move_to_end(event_id)
                return False
            self._seen[event_id] = None
            if len(self._seen) > self._capacity:
                self._seen.popitem(last=False)
            return True

    def __len__(self) -> int:
        return len(self._seen)


class OpenedRecord(NamedTuple):
    """An authenticated, decrypted record."""

    header: RecordHeader
    payload: bytes
    signer_key_id: str
    recipient_key_id: str

    @property
    def event_id(self) -> str:
        return self.header.event_id

    @property
    def sender(self) -> str:
        return self.header.sender

    @property
    def schema(self) -> str:
        return self.header.schema

    @property
    def topic(self) -> str:
        return self.header.topic


def read_header(value: bytes) -> RecordHeader:
    """Parse a record's routing header WITHOUT authenticating it (diagnostics, routing)."""
    return parse_record(value)[0]


@dataclass(slots=True)
class _CachedDek:
    bundle: bytes
    aead: Aead
    signer_key_id: str
    recipient_key_id: str
    sealed_at: int  # the bundle's created_at: when the sender made the DEK (signed)


class Opener:
    """Opens records addressed to ``party``; caches verified DEKs by (sender, DEK id)."""

    def __init__(
        self,
        party: str,
        keys: KeyResolver,
        *,
        replay_guard: ReplayGuard | None = None,
        clock: Clock = time.time,
        max_cached_deks: int = 4096,
        at_rest: bool = False,
        expired_own_keys: bool = False,
    ) -> None:
        """``at_rest``: for records a party sealed for itself and keeps for good (the worker's
        state). Its keys rotated out or past their expiry still open them, or a routine
        rotation would lose them all once its grace ended; a revoked key never does.

        ``expired_own_keys``: for a recipient reading what others sealed to it (the SDK's
        subscriber). An encryption key of its own that has expired (a rotation's grace
        over), neither retired nor revoked, still opens a DEK the sender made while the key
        was live (the bundle's signed ``created_at`` before its ``not_after``), or a record
        waiting on the topic while the recipient was away is lost for good. The sender's
        signing key must still be live: see :meth:`_opens_with`."""
        self.party = party
        self._at_rest = at_rest
        self._expired_own_keys = expired_own_keys
        self._keys = keys
        self._guard: ReplayGuard = (
            replay_guard if replay_guard is not None else InMemoryReplayGuard()
        )
        self._clock = clock
        self._max = max_cached_deks
        self._cache: OrderedDict[tuple[str, bytes], _CachedDek] = OrderedDict()
        self._verify_keys: dict[str, VerifyKey] = {}
        self._lock = threading.Lock()

    def open(
        self, value: bytes, dek_bundle: bytes | None = None, *, topic: str | None = None
    ) -> OpenedRecord:
        """Authenticate and decrypt one record value; ``dek_bundle`` is its bundle header."""
        header, ct_start = parse_record(value)
        if header.recipient != self.party or (topic is not None and header.topic != topic):
            raise WrongRecipient
        now = self._clock()
        key = (header.sender, header.dek_id)
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None and (dek_bundle is None or dek_bundle == entry.bundle):
                self._cache.move_to_end(key)
            else:
                if dek_bundle is None:
                    raise KeyRejected  # a DEK this receiver has never been given
                entry = self._open_bundle(header, dek_bundle, now)
                self._cache[key] = entry
                if len(self._cache) > self._max:
                    self._cache.popitem(last=False)
        self._check_live(entry, now)
        payload = entry.aead.open(header.nonce, value[ct_start:], value[:ct_start])
        if not self._guard.first_sighting(header.event_id):
            raise ReplayDetected
        return OpenedRecord(header, payload, entry.signer_key_id, entry.recipient_key_id)

    def open_kafka(
        self, value: bytes, headers: Iterable[tuple[str, bytes]], *, topic: str | None = None
    ) -> OpenedRecord:
        """Open a Kafka record given its value and headers (the bundle header must be single)."""
        bundles = [v for k, v in headers if k == DEK_BUNDLE_HEADER]
        if len(bundles) > 1:
            raise MalformedEnvelope
        return self.open(value, bundles[0] if bundles else None, topic=topic)

    def forget(self) -> None:
        """Drop every cached DEK (e.g. after a key revocation was announced)."""
        with self._lock:
            self._cache.clear()

    def _check_live(self, entry: _CachedDek, now: float) -> None:
        signer = self._keys.public_key(entry.signer_key_id)
        rkey = self._keys.public_key(entry.recipient_key_id)
        if (
            signer is None
            or rkey is None
            or not self._usable(signer, now)
            or not self._opens_with(rkey, now, entry.sealed_at)
        ):
            raise KeyRejected

    def _usable(self, info: KeyInfo, now: float) -> bool:
        if self._at_rest:
            return info.status is not KeyStatus.REVOKED
        return info.is_live_ts(now)

    def _opens_with(self, rkey: KeyInfo, now: float, sealed_at: int) -> bool:
        """Whether this party's own encryption key ``rkey`` may open a DEK made at
        ``sealed_at``.

        Opening with an expired key of one's own is what every mail client does with a
        retired private key: it grants whoever sealed nothing, and the bundle's signature,
        by a signing key live now, vouches for ``sealed_at``. Revoked (compromised) or
        retired on purpose (``accord keys retire``: "records under it no longer open") is
        still refused. The sender's signing key gets no such allowance: ``created_at`` is
        the signer's own claim, so anyone holding an expired signing key's private half (an
        old backup, a decommissioned host) could write a time before its expiry into a
        bundle made today; expiry is what ends a key nobody knows was copied.
        """
        if self._usable(rkey, now):
            return True
        return (
            self._expired_own_keys
            and rkey.status is KeyStatus.ACTIVE
            and rkey.not_after is not None
            and sealed_at < rkey.not_after.timestamp()
        )

    def _open_bundle(self, header: RecordHeader, raw: bytes, now: float) -> _CachedDek:
        bundle = parse_bundle(raw)
        if (
            bundle.sender != header.sender
            or bundle.recipient != header.recipient
            or bundle.dek_id != header.dek_id
        ):
            raise TamperedEnvelope
        signer = self._keys.public_key(bundle.signer_key_id)
        if (
            signer is None
            or signer.party != bundle.sender
            or signer.alg is not KeyAlg.ED25519
            or not self._usable(signer, now)
        ):
            raise KeyRejected
        if not self._verify_key(signer).verify(bundle.signature, signature_input(bundle.signed)):
            raise BadSignature
        private = self._decryption_key(bundle, now)
        try:
            dek = hpke_open(private, bundle.sealed_dek, hpke_info(bundle.context))
        except TamperedEnvelope as exc:
            # The signature held: the sender sealed it wrongly (or R holds a wrong key).
            raise DekUnopenable from exc
        return _CachedDek(
            raw, Aead(dek), bundle.signer_key_id, bundle.recipient_key_id, bundle.created_at
        )

    def _decryption_key(self, bundle: Bundle, now: float) -> KemPrivateKey:
        rkey = self._keys.public_key(bundle.recipient_key_id)
        if rkey is None:
            raise KeyRejected
        if rkey.party != self.party:
            raise WrongRecipient
        if rkey.alg is KeyAlg.ED25519 or rkey.alg.kem is not bundle.kem:
            raise KeyRejected
        if not self._opens_with(rkey, now, bundle.created_at):
            raise KeyRejected
        private = self._keys.decryption_key(rkey.key_id)
        if private is None:
            raise KeyRejected
        return private

    def _verify_key(self, info: KeyInfo) -> VerifyKey:
        vk = self._verify_keys.get(info.key_id)
        if vk is None:
            vk = VerifyKey(info.public)
            self._verify_keys[info.key_id] = vk
        return vk
