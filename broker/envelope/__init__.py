"""Sealed envelopes: what crosses Kafka is ciphertext plus a routing header, nothing readable.

Usage, in the spirit of pyca's recipes::

    sealer = Sealer("wmp", keystore, settings.envelope)
    record = sealer.seal(payload, event_id=eid, recipient="worker",
                         schema="contact-event.v1", topic="accord.ingress.wmp")
    # produce record.value with record.headers

    opener = Opener("worker", keystore)
    opened = opener.open_kafka(value, headers, topic="accord.ingress.wmp")

The record value is AES-256-GCM under a data key (DEK) with the routing header as associated
data; the DEK travels in every record's ``accord-dek`` header as an HPKE-sealed,
Ed25519-signed bundle and is cached by the receiver. The wire format is specified in
``schemas/envelope.md``. Every failure is a ``broker.errors.EnvelopeError`` subclass.
"""

from broker.envelope._canonical import canonical_json
from broker.envelope._keytypes import (
    KeyAlg,
    KeyInfo,
    KeyPurpose,
    KeyResolver,
    KeyStatus,
    SigningIdentity,
    compute_key_id,
    verify_detached,
)
from broker.envelope._open import (
    InMemoryReplayGuard,
    OpenedRecord,
    Opener,
    ReplayGuard,
    read_header,
)
from broker.envelope._seal import DEK_BUNDLE_HEADER, Clock, SealedRecord, Sealer
from broker.envelope._signed import SignedBundle, claimed_key_ids, claimed_signer, signed_bundle
from broker.envelope._wire import VERSION, RecordHeader, is_identifier

__all__ = [
    "DEK_BUNDLE_HEADER",
    "VERSION",
    "Clock",
    "InMemoryReplayGuard",
    "KeyAlg",
    "KeyInfo",
    "KeyPurpose",
    "KeyResolver",
    "KeyStatus",
    "OpenedRecord",
    "Opener",
    "RecordHeader",
    "ReplayGuard",
    "SealedRecord",
    "Sealer",
    "SignedBundle",
    "SigningIdentity",
    "canonical_json",
    "claimed_key_ids",
    "claimed_signer",
    "compute_key_id",
    "is_identifier",
    "read_header",
    "signed_bundle",
    "verify_detached",
]
