"""A DEK bundle's signed facts, once its signature has verified: for saying why a record
did not open without trusting anything in it that nobody signed.

The opener refuses a record at the first check that fails, some before the signature is
checked (a signer key it does not accept), so its refusal alone cannot tell a forgery from a
record sealed to a key the reader lost. :func:`signed_bundle` checks the signature itself,
under a live Ed25519 signing key of the sender the bundle names, and only then gives what
the bundle says: who sealed it, to which key, and when.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.crypto import VerifyKey
from broker.envelope._keytypes import KeyAlg, KeyResolver
from broker.envelope._wire import parse_bundle, signature_input

__all__ = ["SignedBundle", "claimed_key_ids", "claimed_signer", "signed_bundle"]


@dataclass(frozen=True, slots=True)
class SignedBundle:
    """What a verified DEK bundle says: its sender, the key it is sealed to, when."""

    sender: str
    recipient_key_id: str
    created_at: int  # seconds since the epoch, as the sender signed it


def signed_bundle(keys: KeyResolver, raw: bytes, *, now: float) -> SignedBundle | None:
    """The bundle's signed facts if it verifies under a signing key of its sender's that is
    live at ``now``; None otherwise. ``MalformedEnvelope`` (an ``EnvelopeError``) when
    ``raw`` is no bundle at all."""
    bundle = parse_bundle(raw)
    info = keys.public_key(bundle.signer_key_id)
    if (
        info is None
        or info.party != bundle.sender
        or info.alg is not KeyAlg.ED25519
        or not info.is_live_ts(now)
    ):
        return None
    if not VerifyKey(info.public).verify(bundle.signature, signature_input(bundle.signed)):
        return None
    return SignedBundle(bundle.sender, bundle.recipient_key_id, bundle.created_at)


def claimed_signer(raw: bytes) -> tuple[str, str]:
    """The sender and signer key id a bundle names, NOT verified: anybody's claim. Only for
    deciding whether a record may be worth keeping until a key is imported (never for
    trusting it). ``MalformedEnvelope`` when ``raw`` is no bundle at all."""
    bundle = parse_bundle(raw)
    return bundle.sender, bundle.signer_key_id


def claimed_key_ids(raw: bytes) -> tuple[str, str]:
    """The signer key id and the recipient key id a bundle names, NOT verified. Only for
    saying which key a record needs that the reader does not hold (never for trusting it).
    ``MalformedEnvelope`` when ``raw`` is no bundle at all."""
    bundle = parse_bundle(raw)
    return bundle.signer_key_id, bundle.recipient_key_id
