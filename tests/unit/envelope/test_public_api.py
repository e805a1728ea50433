"""The public surface of broker.envelope and broker.keys is pinned, and hazmat stays contained."""

from __future__ import annotations

import re
from pathlib import Path

import broker.envelope
import broker.keys

BROKER = Path(__file__).resolve().parents[3] / "broker"


def test_envelope_public_surface() -> None:
    assert set(broker.envelope.__all__) == {
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
        "SigningIdentity",
        "canonical_json",
        "compute_key_id",
        "is_identifier",
        "read_header",
        "verify_detached",
    }
    for name in broker.envelope.__all__:
        assert hasattr(broker.envelope, name)


def test_keys_public_surface() -> None:
    assert set(broker.keys.__all__) == {
        "ALL_PURPOSES",
        "DEFAULT_ROTATION_GRACE",
        "SPECIAL_PRINCIPALS",
        "FileKeyStore",
        "KeyAlg",
        "KeyInfo",
        "KeyPurpose",
        "KeyStatus",
        "KeyStore",
        "compute_key_id",
    }
    for name in broker.keys.__all__:
        assert hasattr(broker.keys, name)


def test_only_one_module_touches_cryptography_hazmat() -> None:
    pattern = re.compile(r"^\s*(from|import)\s+cryptography", re.MULTILINE)
    users = sorted(
        str(p.relative_to(BROKER)) for p in BROKER.rglob("*.py") if pattern.search(p.read_text())
    )
    assert users == ["envelope/_primitives.py"]
