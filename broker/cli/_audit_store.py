"""The audit commands' index and checkpoint verifier, as the settings name them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.cli._common import keystore
from broker.config import Settings
from broker.principals import Principal

if TYPE_CHECKING:
    from broker.audit import KeystoreAuditVerifier
    from broker.governance import AuditStore


def _db_url(settings: Settings, db: str | None) -> str | None:
    if db is not None:
        return db
    return settings.audit.db.get_secret_value() if settings.audit.db else None


def open_index(settings: Settings, db: str | None, *, create: bool = False) -> AuditStore:
    from broker.governance import open_store

    return open_store(_db_url(settings, db), home=settings.home, create=create)


def verifier_of(settings: Settings) -> KeystoreAuditVerifier:
    """Checks checkpoints against the signed key directory: the indexer's own keystore
    when it has one (a deployment gives it one holding public keys only), else the
    console's (one machine, as in the demo)."""
    from broker.audit import KeystoreAuditVerifier

    own = (settings.keys_dir / Principal.INDEXER / "keystore.json").is_file()
    return KeystoreAuditVerifier(
        keystore(settings, Principal.INDEXER if own else Principal.CONSOLE)
    )
