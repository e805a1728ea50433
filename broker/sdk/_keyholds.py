"""Which deliveries fail to open because of the reader's own keys: those are held.

A record refused as ``key-rejected`` is held (``RecordKeyUnavailable``) only when the
refusal is the reader's own keystore's doing: sealed, by the broker, to a key of the party's
own that the keystore does not hold, retired or revoked, or sealed after that key expired.
Skipped, such a record is lost for good although the audit log says it was shared. It is
held only once its bundle's signature has verified under a live signing key of the broker's,
so nobody without that key can make a reader stop.

A record whose signer this keystore does not accept (unknown, expired or revoked, or not a
signing key of the sender named) is reported as ``unknown-signer`` and never held: the opener
refuses it before any signature is checked, so the key id in it is anybody's claim, and
holding on it would let whoever can write to the topic stop every reader for good. Yet a
genuine delivery carries such a signer whenever the reader is behind with the broker's keys
(late with a rotation's import step, or a keystore restored from a backup older than its last
import), so one that claims the broker as sender under a key id this keystore has never heard
of ``awaits_import``: the subscriber parks it (broker.sdk._parked) and tries it again once the
keystore changes. A signer of another party no import makes acceptable: skipped.

A genuine delivery also carries a signer known here but no longer live when the broker's old
signing key expired before a reader that fell behind read what it signed: skipped, that is
lost as surely as one sealed to a lost key. So one whose signature verifies under a signing
key of the broker's this keystore knows as expired or retired, and that was signed before it
stopped and within the replay memory's retention (:func:`gone_signer`), is held too
(:func:`signer_gone`): only a holder of that key can make a reader stop. Not one signed by a
key since revoked: revocation is for a compromised key, whose holder could otherwise sign,
with any date it likes, records that stop every reader at every start; what such a key signed
is reported and skipped. Retiring is on purpose, not a compromise (and needs no ``--force``),
so a retired key's records hold as an expired one's do. The subscriber first asks its replay
memory, without recording a sighting, whether it is a copy of a record it opened before at
another position: that is a replay, reported and skipped as ever.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from pydantic import ValidationError

from broker.crypto import KemPrivateKey
from broker.envelope import (
    DEK_BUNDLE_HEADER,
    KeyAlg,
    KeyInfo,
    KeyResolver,
    KeyStatus,
    SigningIdentity,
    claimed_signer,
    signed_bundle,
)
from broker.errors import (
    BadSignature,
    EnvelopeError,
    KeyRejected,
    RecordKeyUnavailable,
    ReplayDetected,
)
from broker.kafka import Message
from broker.principals import Principal
from broker.sdk._parked import ParkedRecord

__all__ = [
    "SKIP_HINT",
    "UNKNOWN_SIGNER",
    "awaits_import",
    "gone_key_verdict",
    "gone_signer",
    "judged",
    "revived",
    "signer_gone",
]

#: The reason a record signed by a key this keystore does not accept is reported under.
UNKNOWN_SIGNER = "unknown-signer"
#: How to go past such records on purpose, whichever front end reads them.
SKIP_HINT = (
    "going past it loses it, and is done only on purpose "
    "(docs/sdk.md, 'Records your keystore cannot open')"
)
_START_AGAIN = "then start again: the record is read again, nothing after it was committed"


def judged(
    keys: KeyResolver,
    party: str,
    *,
    topic: str,
    partition: int,
    offset: int,
    headers: Sequence[tuple[str, bytes]],
    now: float | None = None,
) -> RecordKeyUnavailable | str:
    """For a record the opener refused as ``key-rejected``: the error to stop on when the
    refusal is this keystore's own keys' doing, else the reason to report it under."""
    bundles = [v for k, v in headers if k == DEK_BUNDLE_HEADER]
    if len(bundles) != 1:
        return KeyRejected.reason  # no DEK given: nobody's key
    at = time.time() if now is None else now
    try:
        bundle = signed_bundle(keys, bundles[0], now=at)
    except EnvelopeError:
        return KeyRejected.reason
    if bundle is None:  # checked again here (the opener did), as a hold rests on it
        return UNKNOWN_SIGNER
    if bundle.sender != Principal.WORKER:
        return BadSignature.reason  # only the broker seals to recipients
    why = _own_key_problem(keys, party, bundle.recipient_key_id, bundle.created_at, at)
    if why is None:
        return KeyRejected.reason
    return RecordKeyUnavailable(
        f"{topic} partition {partition} offset {offset} cannot be opened with this keystore: {why}",
        topic=topic,
        partition=partition,
        offset=offset,
        key_id=bundle.recipient_key_id,
    )


def awaits_import(keys: KeyResolver, headers: Sequence[tuple[str, bytes]]) -> bool:
    """Whether a record refused as ``unknown-signer`` may be a genuine delivery signed by a
    broker key not imported here yet: its bundle names the broker as sender and a signer key
    id this keystore does not know at all. Unverified (it cannot be): parking it costs a row
    in a bounded store, never a hold."""
    bundles = [v for k, v in headers if k == DEK_BUNDLE_HEADER]
    if len(bundles) != 1:
        return False
    try:
        sender, signer_key_id = claimed_signer(bundles[0])
    except EnvelopeError:
        return False
    return sender == Principal.WORKER and keys.public_key(signer_key_id) is None


def gone_signer(
    keys: KeyResolver,
    headers: Sequence[tuple[str, bytes]],
    *,
    retention: float,
    now: float | None = None,
) -> KeyInfo | None:
    """For a record refused as ``unknown-signer``: the broker's signing key, known here as
    expired or retired (not revoked), under which its bundle's signature verifies and
    which was live when the bundle says it was signed, less than ``retention`` seconds ago;
    None when not so (the signer unknown here, another party's, revoked as compromised, or
    the signature not its: anybody's claim)."""
    bundles = [v for k, v in headers if k == DEK_BUNDLE_HEADER]
    if len(bundles) != 1:
        return None
    at = time.time() if now is None else now
    try:
        sender, signer_key_id = claimed_signer(bundles[0])
        info = keys.public_key(signer_key_id)
        if (
            sender != Principal.WORKER
            or info is None
            or info.party != Principal.WORKER
            or info.alg is not KeyAlg.ED25519
            or info.status is KeyStatus.REVOKED  # compromised: its signature is anybody's
            or (stopped := _stopped(info)) is None
            or info.is_live_ts(at)
        ):
            return None
        bundle = signed_bundle(revived(keys, info), bundles[0], now=at)
    except EnvelopeError:
        return None
    if bundle is None or not at - retention < bundle.created_at < stopped.timestamp():
        # Older than the replay memory: a copy of it could no longer be told from the
        # genuine record, and no record still on a topic was signed so long ago.
        return None
    return info


def gone_key_verdict(
    keys: KeyResolver,
    msg: Message | ParkedRecord,
    look: Callable[[KeyResolver], object],
    *,
    retention: float,
    skip: bool,
) -> RecordKeyUnavailable | str | None:
    """For a record refused as ``unknown-signer``: the hold when the broker signed it with a
    key since expired (:func:`gone_signer`; ``unknown-signer`` instead with ``skip``),
    ``replay`` for a copy of one opened before elsewhere; None when the broker did not sign
    it so. ``look`` opens it with the keys given and asks the replay memory whether it
    would admit it, recording nothing: a record skipped here and sent again later, at
    another position, is then opened, not refused as a replay."""
    info = gone_signer(keys, msg.headers, retention=retention)
    if info is None:
        return None
    try:
        look(revived(keys, info))
    except ReplayDetected:
        return ReplayDetected.reason
    except (EnvelopeError, ValidationError):
        return None
    if skip:
        return UNKNOWN_SIGNER
    return signer_gone(info, topic=msg.topic, partition=msg.partition, offset=msg.offset)


def revived(keys: KeyResolver, info: KeyInfo) -> KeyResolver:
    """``keys`` with the signing key ``info`` taken as live: to learn whether a record it
    signed is a replay, never to hand the record over."""
    return _Revived(keys, dataclasses.replace(info, status=KeyStatus.ACTIVE, not_after=None))


def signer_gone(info: KeyInfo, *, topic: str, partition: int, offset: int) -> RecordKeyUnavailable:
    """The error to stop on for a record :func:`gone_signer` found the broker signed."""
    return RecordKeyUnavailable(
        f"{topic} partition {partition} offset {offset} cannot be opened with this keystore: "
        f"the broker signed it with its key {info.key_id}, {_state(info)} in this keystore "
        f"before this group read it, and records under it no longer open; ask the "
        f"partnership's operators to send it again; {SKIP_HINT}",
        topic=topic,
        partition=partition,
        offset=offset,
        key_id=info.key_id,
    )


class _Revived:
    def __init__(self, keys: KeyResolver, live: KeyInfo) -> None:
        self._keys, self._live = keys, live

    def public_key(self, key_id: str) -> KeyInfo | None:
        return self._live if key_id == self._live.key_id else self._keys.public_key(key_id)

    def current_signing_key(self, party: str) -> SigningIdentity:
        return self._keys.current_signing_key(party)

    def current_encryption_key(self, party: str) -> KeyInfo:
        return self._keys.current_encryption_key(party)

    def decryption_key(self, key_id: str) -> KemPrivateKey | None:
        return self._keys.decryption_key(key_id)


def _stopped(info: KeyInfo) -> datetime | None:
    """When a signing key stopped being live: its expiry, or its retirement if earlier;
    None if not known (then nothing it signed can be told to predate it)."""
    ends = [info.not_after]
    if info.status is KeyStatus.RETIRED:
        ends.append(info.status_changed_at)
    known = [when for when in ends if when is not None]
    return min(known) if known else None


def _own_key_problem(
    keys: KeyResolver, party: str, key_id: str, sealed_at: int, now: float
) -> str | None:
    """What is wrong with the party's own key the record is sealed to; None if nothing (or
    it is not the party's key at all: the record's fault)."""
    info = keys.public_key(key_id)
    if info is None or keys.decryption_key(key_id) is None:
        return (
            f"it is sealed to {party}'s key {key_id}, whose private half this keystore does "
            f"not hold: restore the keystore from its backup (or give the one that holds it), "
            f"{_START_AGAIN}"
        )
    if info.party != party or info.alg is KeyAlg.ED25519:
        return None
    if info.is_live_ts(now):
        return None
    if info.status is KeyStatus.ACTIVE and info.not_after is not None:
        if sealed_at < info.not_after.timestamp():
            return None  # it opens (Opener expired_own_keys): refused for another reason
        return (
            f"it is sealed to {party}'s key {key_id} after that key expired; ask the "
            f"partnership's operators to send it again; {SKIP_HINT}"
        )
    return (
        f"it is sealed to {party}'s key {key_id}, {_state(info)} in this keystore, and "
        f"records under it no longer open; ask the partnership's operators to send it again; "
        f"{SKIP_HINT}"
    )


def _state(info: KeyInfo) -> str:
    if info.status is KeyStatus.REVOKED:
        return f"revoked{_since(info.status_changed_at)} (compromised)"
    if info.status is KeyStatus.RETIRED:
        return f"retired{_since(info.status_changed_at)}"
    return f"expired{_since(info.not_after)}"


def _since(when: datetime | None) -> str:
    return "" if when is None else f" on {when:%Y-%m-%d %H:%M} UTC"
