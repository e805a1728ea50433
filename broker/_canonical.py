"""The canonical JSON of the payloads Accord seals (events, deliveries, acknowledgements).

Audit records, checkpoints and the key directory use RFC 8785 (``rfc8785``, with the audit
writer's fast path in ``broker/audit/_chain.py``), which writes the same bytes for every value
without floats or keys beyond the BMP; payloads keep this encoding, which publishers already
produce, until a change can be announced to them.
"""

from __future__ import annotations

import json

__all__ = ["canonical_json"]


# What json.dumps would build on every call with these options, built once: the worker
# encodes a payload for every delivery.
_encode = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


def canonical_json(obj: object) -> bytes:
    """UTF-8 JSON, keys sorted, no insignificant whitespace, non-ASCII kept, NaN refused."""
    return _encode(obj).encode("utf-8")
