"""A data key the sender signed but sealed wrongly is quarantined as ``dek-unopenable``.

Tampering in transit fails the bundle's signature first (``bad-signature``) or the record's
AEAD (``tampered``); only the authenticated sender can put a sealed DEK that does not open
under a valid signature, so its operators are told it is that sender's sealing fault.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from broker.audit import AuditKind
from broker.crypto import KemPublicKey, hpke_seal, random_bytes
from broker.envelope import Opener
from broker.envelope._seal import DEK_BUNDLE_HEADER
from broker.envelope._wire import assemble_bundle, hpke_info, parse_bundle, signature_input
from broker.errors import DekUnopenable, TamperedEnvelope
from broker.keys import FileKeyStore
from broker.pipeline._processor import Processor
from broker.topics import QUARANTINE, ingress
from tests.unit.pipeline.test_processor import Run, incident, seal_as


def _resealed(keys: FileKeyStore, bundle: bytes, info: bytes) -> bytes:
    """``bundle`` with a fresh DEK sealed under ``info``, signed again by its sender's key."""
    b = parse_bundle(bundle)
    rkey = keys.public_key(b.recipient_key_id)
    assert rkey is not None
    sealed = hpke_seal(KemPublicKey(b.kem, rkey.public), random_bytes(32), info)
    signed = assemble_bundle(b.context, sealed)
    return signed + keys.current_signing_key(b.sender).key.sign(signature_input(signed))


def test_a_validly_signed_dek_sealed_under_the_wrong_hpke_info_is_dek_unopenable(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    run = Run(make_processor())
    value, headers = seal_as(pipeline_keys, "wmp", incident(), topic=ingress("wmp"))
    context = parse_bundle(dict(headers)[DEK_BUNDLE_HEADER]).context
    headers = [
        (k, _resealed(pipeline_keys, v, context) if k == DEK_BUNDLE_HEADER else v)  # no label
        for k, v in headers
    ]
    run.feed(ingress("wmp"), value, headers)
    [q] = run.on(QUARANTINE)
    held = json.loads(Opener("governance", pipeline_keys).open_kafka(q.value, q.headers).payload)
    assert held["reason"] == "dek-unopenable"
    assert [a.data["reason"] for a in run.audit(AuditKind.QUARANTINED)] == ["dek-unopenable"]
    assert run.audit(AuditKind.DECIDED) == []


def test_only_a_dek_that_does_not_open_is_dek_unopenable_not_one_that_fails_the_record(
    pipeline_keys: FileKeyStore,
) -> None:
    """A signed DEK that opens but is not the record's fails AES-GCM: plain ``tampered``."""
    value, headers = seal_as(pipeline_keys, "wmp", incident(), topic=ingress("wmp"))
    bundle = dict(headers)[DEK_BUNDLE_HEADER]
    context = parse_bundle(bundle).context
    wrong = _resealed(pipeline_keys, bundle, context)
    right_info = _resealed(pipeline_keys, bundle, hpke_info(context))  # opens, wrong DEK
    for resealed, error in ((wrong, DekUnopenable), (right_info, TamperedEnvelope)):
        with pytest.raises(TamperedEnvelope) as info:
            Opener("worker", pipeline_keys).open(value, resealed)
        assert type(info.value) is error
