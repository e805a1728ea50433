"""The tamper-evident audit log: records, hash chains, signed checkpoints.

Every decision — including every decision not to share — and every delivery, quarantine,
consent change, policy load and recipient access becomes an :class:`AuditRecord`. Records
form hash chains (``prev_hash`` → ``hash`` over canonical JSON), each chain written by one
writer at a time through a :class:`ChainWriter`, and checkpoint records carry the chain
writer's own Ed25519 signature over the chain head (:class:`KeystoreAuditSigner`: the
worker's key for ``worker:*`` chains, the console's for ``console:*``).
:func:`verify_chain` and :func:`verify_truncation` check a chain with nothing but the
records and a :class:`CheckpointVerifier`. Records hold subject keys and field names only,
never personal values.

This is the writing side, which the worker uses; ``broker.governance`` is the reading side
(the index, verification of the whole log, reports, override review).
"""

from broker.audit._chain import (
    ChainReport,
    ChainWriter,
    CheckpointSigner,
    CheckpointVerifier,
    PreEncoded,
    check_next,
    jcs_text,
    verify_chain,
    verify_truncation,
)
from broker.audit._keys import (
    WRITER_KINDS,
    KeystoreAuditSigner,
    KeystoreAuditVerifier,
    chain_writer,
    may_write,
)
from broker.audit._record import GENESIS, AuditKind, AuditRecord, read_record, record_hash

__all__ = [
    "GENESIS",
    "WRITER_KINDS",
    "AuditKind",
    "AuditRecord",
    "ChainReport",
    "ChainWriter",
    "CheckpointSigner",
    "CheckpointVerifier",
    "KeystoreAuditSigner",
    "KeystoreAuditVerifier",
    "PreEncoded",
    "chain_writer",
    "check_next",
    "jcs_text",
    "may_write",
    "read_record",
    "record_hash",
    "verify_chain",
    "verify_truncation",
]
