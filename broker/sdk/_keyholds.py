"""Which deliveries fail to open because of the reader's own keystore: those are held.

A record refused as ``key-rejected`` is the keystore's doing, not the record's: sealed to a
key of the party's own that the keystore lost, retired or revoked, or signed by a broker key
it does not know (a signed directory not imported yet) or no longer accepts. Skipped, such a
record is lost for good although the audit log says it was shared; so the subscriber stops
on it (``RecordKeyUnavailable``) unless told to skip them. Everything else unopenable
(tampered, forged, replayed, malformed) is the record's fault and is reported and skipped.

The bundle is read here without being verified: only to name the key and say what to do.
A record no verifier would take (no bundle, a signer that is not the sender's Ed25519 key,
an encryption key of another kind) is not held: it is nobody's key problem.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime

from broker.envelope import DEK_BUNDLE_HEADER, KeyAlg, KeyInfo, KeyResolver, KeyStatus
from broker.envelope._wire import parse_bundle
from broker.errors import EnvelopeError, RecordKeyUnavailable

__all__ = ["SKIP_HINT", "held"]

#: How to go past such records on purpose, whichever front end reads them.
SKIP_HINT = (
    "going past it loses it, and is done only on purpose "
    "(docs/sdk.md, 'Records your keystore cannot open')"
)
_START_AGAIN = "then start again: the record is read again, nothing after it was committed"


def held(
    keys: KeyResolver,
    party: str,
    *,
    topic: str,
    partition: int,
    offset: int,
    headers: Sequence[tuple[str, bytes]],
    now: float | None = None,
) -> RecordKeyUnavailable | None:
    """The error to stop on for a record the opener refused as ``key-rejected``, or None
    when the refusal is not this keystore's doing."""
    bundles = [v for k, v in headers if k == DEK_BUNDLE_HEADER]
    if len(bundles) != 1:
        return None
    try:
        bundle = parse_bundle(bundles[0])
    except EnvelopeError:
        return None
    at = time.time() if now is None else now
    why = _signer_problem(keys, bundle.sender, bundle.signer_key_id, at)
    key_id = bundle.signer_key_id
    if why is None:
        why = _own_key_problem(keys, party, bundle.recipient_key_id, bundle.created_at, at)
        key_id = bundle.recipient_key_id
    if not why:
        return None
    return RecordKeyUnavailable(
        f"{topic} partition {partition} offset {offset} cannot be opened with this keystore: {why}",
        topic=topic,
        partition=partition,
        offset=offset,
        key_id=key_id,
    )


def _signer_problem(keys: KeyResolver, sender: str, key_id: str, now: float) -> str | None:
    """What is wrong with the signer for this keystore: None if nothing; "" if the record
    is at fault (not the sender's signing key), so not held."""
    info = keys.public_key(key_id)
    if info is None:
        return (
            f"it is signed by {sender}'s key {key_id}, which this keystore does not know: "
            f"import the latest signed key directory ('accord keys import'), {_START_AGAIN}"
        )
    if info.party != sender or info.alg is not KeyAlg.ED25519:
        return ""
    if info.is_live_ts(now):
        return None
    return (
        f"it is signed by {sender}'s key {key_id}, {_state(info)}, and such a signature is "
        f"not accepted however old the record; ask the partnership's operators to send it "
        f"again; {SKIP_HINT}"
    )


def _own_key_problem(
    keys: KeyResolver, party: str, key_id: str, sealed_at: int, now: float
) -> str | None:
    info = keys.public_key(key_id)
    if info is None or keys.decryption_key(key_id) is None:
        return (
            f"it is sealed to {party}'s key {key_id}, whose private half this keystore does "
            f"not hold: restore the keystore from its backup (or give the one that holds it), "
            f"{_START_AGAIN}"
        )
    if info.party != party or info.alg is KeyAlg.ED25519:
        return ""
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
