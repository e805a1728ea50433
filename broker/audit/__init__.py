"""The tamper-evident audit log.

Every decision — including every decision not to share — and every delivery, quarantine,
consent change, policy load and recipient access becomes an :class:`AuditRecord`. Records
form hash chains (``prev_hash`` → ``hash`` over canonical JSON), each chain written by one
writer at a time, and periodic checkpoint records carry the audit key's Ed25519 signature
over the chain head. Records hold subject keys and field names only, never personal values.
"""

from broker.audit._chain import (
    ChainReport,
    ChainWriter,
    CheckpointSigner,
    CheckpointVerifier,
    checkpoint_message,
    verify_chain,
    verify_truncation,
)
from broker.audit._keys import AUDIT_PARTY, KeystoreAuditSigner, KeystoreAuditVerifier
from broker.audit._record import GENESIS, AuditKind, AuditRecord, record_hash

__all__ = [
    "AUDIT_PARTY",
    "GENESIS",
    "AuditKind",
    "AuditRecord",
    "ChainReport",
    "ChainWriter",
    "CheckpointSigner",
    "CheckpointVerifier",
    "KeystoreAuditSigner",
    "KeystoreAuditVerifier",
    "checkpoint_message",
    "record_hash",
    "verify_chain",
    "verify_truncation",
]
