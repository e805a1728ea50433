"""Envelope throughput: DEK reuse (the default) vs a fresh HPKE seal per record, same run.

``run()`` returns records/s sealed and opened for both modes and the ratios; run the file to
print them: ``python benchmarks/bench_envelope.py``. Payloads are 1 KB, the KEM is the default
hybrid ML-KEM-768 + X25519, and the keystore is a real local file keystore in a temp dir.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from broker.config import EnvelopeSettings
from broker.envelope import Opener, SealedRecord, Sealer
from broker.keys import FileKeyStore

PAYLOAD = b"x" * 1024
TOPIC = "accord.ingress.wmp"
SCHEMA = "contact-event.v1"


def _measure(store: FileKeyStore, settings: EnvelopeSettings, n: int) -> tuple[float, float]:
    sealer = Sealer("wmp", store, settings)
    opener = Opener("worker", store)
    ids = [f"bench-{settings.dek_max_records}-{i}" for i in range(n)]
    start = time.perf_counter()
    records: list[SealedRecord] = [
        sealer.seal(PAYLOAD, event_id=i, recipient="worker", schema=SCHEMA, topic=TOPIC)
        for i in ids
    ]
    sealed = time.perf_counter()
    for rec in records:
        opener.open(rec.value, rec.dek_bundle, topic=TOPIC)
    opened = time.perf_counter()
    return n / (sealed - start), n / (opened - sealed)


def run(reuse_records: int = 50_000, fresh_records: int = 2_000) -> dict[str, Any]:
    """Records/s sealed and opened with DEK reuse and with one HPKE seal per record."""
    with tempfile.TemporaryDirectory() as tmp:
        store = FileKeyStore(Path(tmp) / "keys", create=True)
        store.ensure_party("wmp")
        store.ensure_party("worker")
        defaults = EnvelopeSettings()
        _measure(store, defaults, 500)  # warm-up: imports, key loading, caches
        reuse_seal, reuse_open = _measure(store, defaults, reuse_records)
        fresh_seal, fresh_open = _measure(store, EnvelopeSettings(dek_max_records=1), fresh_records)
    reuse_rt = 1 / (1 / reuse_seal + 1 / reuse_open)
    fresh_rt = 1 / (1 / fresh_seal + 1 / fresh_open)
    return {
        "payload_bytes": len(PAYLOAD),
        "kem": defaults.kem.value,
        "dek_max_records": defaults.dek_max_records,
        "reuse_seal_per_s": round(reuse_seal),
        "reuse_open_per_s": round(reuse_open),
        "fresh_seal_per_s": round(fresh_seal),
        "fresh_open_per_s": round(fresh_open),
        "seal_ratio": round(reuse_seal / fresh_seal, 1),
        "open_ratio": round(reuse_open / fresh_open, 1),
        "round_trip_ratio": round(reuse_rt / fresh_rt, 1),
        "target_ratio": 20,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
