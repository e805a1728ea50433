"""The one canonical JSON encoding Accord hashes, signs and seals."""

from __future__ import annotations

import json

__all__ = ["canonical_json"]


def canonical_json(obj: object) -> bytes:
    """UTF-8 JSON, keys sorted, no insignificant whitespace, non-ASCII kept, NaN refused."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
