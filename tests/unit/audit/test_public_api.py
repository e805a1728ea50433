"""The audit package's public surface is exactly its ``__all__``."""

from __future__ import annotations

import broker.audit


def test_every_name_in_all_is_importable_and_nothing_private_leaks() -> None:
    for name in broker.audit.__all__:
        assert hasattr(broker.audit, name), name
        assert not name.startswith("_")
    for seam in ("AuditStore", "Indexer", "open_store", "disclosure_log", "governance_report"):
        assert seam in broker.audit.__all__
