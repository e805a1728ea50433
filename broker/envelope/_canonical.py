"""Canonical payload bytes: Accord's one canonical JSON encoding, re-exported for senders."""

from __future__ import annotations

from broker._canonical import canonical_json

__all__ = ["canonical_json"]
