"""The tamper-evident audit log, its index, verification and the IG reports.

Every decision — including every decision not to share — and every delivery, quarantine,
consent change, policy load and recipient access becomes an :class:`AuditRecord`. Records
form hash chains (``prev_hash`` → ``hash`` over canonical JSON), each chain written by one
writer at a time, and periodic checkpoint records carry the audit key's Ed25519 signature
over the chain head. Records hold subject keys and field names only, never personal values.

The :class:`Indexer` consumes ``accord.audit`` into an :class:`AuditStore` (SQLite or
PostgreSQL), verifying every chain as it goes; :func:`verify_store` and :func:`verify_records`
prove the log intact; :func:`disclosure_log` and :func:`governance_report` answer IG officers;
:func:`review_override` records an override's review in the log itself, through a
:class:`ChainAppender` (the one writer of a console's own chain).
"""

from broker.audit._append import AuditSink, ChainAppender, chain_head_on_topic
from broker.audit._chain import (
    ChainReport,
    ChainWriter,
    CheckpointSigner,
    CheckpointVerifier,
    check_next,
    checkpoint_message,
    verify_chain,
    verify_truncation,
)
from broker.audit._index import (
    ChainTracker,
    Indexer,
    IndexSummary,
    TopicMessage,
    by_chain,
    read_topic,
)
from broker.audit._keys import AUDIT_PARTY, KeystoreAuditSigner, KeystoreAuditVerifier
from broker.audit._record import GENESIS, AuditKind, AuditRecord, record_hash
from broker.audit._reports import (
    DecisionCount,
    DisclosureEntry,
    ExpiringAgreement,
    GovernanceReport,
    PendingOverride,
    RecipientOpenings,
    basis_text,
    disclosure_log,
    expiring_agreements,
    governance_report,
    pending_overrides,
    subject_key_for_nhs_number,
)
from broker.audit._review import (
    check_review_text,
    check_reviewable,
    review_override,
    review_record,
)
from broker.audit._sql import (
    PostgresAuditStore,
    SqliteAuditStore,
    describe_url,
    open_store,
)
from broker.audit._store import (
    AuditStore,
    ChainHead,
    IndexBatch,
    IndexedRecord,
    OverrideReview,
    StoredRow,
    Window,
)
from broker.audit._verify import (
    VerifySummary,
    signed_checkpoints,
    verify_records,
    verify_store,
)

__all__ = [
    "AUDIT_PARTY",
    "GENESIS",
    "AuditKind",
    "AuditRecord",
    "AuditSink",
    "AuditStore",
    "ChainAppender",
    "ChainHead",
    "ChainReport",
    "ChainTracker",
    "ChainWriter",
    "CheckpointSigner",
    "CheckpointVerifier",
    "DecisionCount",
    "DisclosureEntry",
    "ExpiringAgreement",
    "GovernanceReport",
    "IndexBatch",
    "IndexSummary",
    "IndexedRecord",
    "Indexer",
    "KeystoreAuditSigner",
    "KeystoreAuditVerifier",
    "OverrideReview",
    "PendingOverride",
    "PostgresAuditStore",
    "RecipientOpenings",
    "SqliteAuditStore",
    "StoredRow",
    "TopicMessage",
    "VerifySummary",
    "Window",
    "basis_text",
    "by_chain",
    "chain_head_on_topic",
    "check_next",
    "check_review_text",
    "check_reviewable",
    "checkpoint_message",
    "describe_url",
    "disclosure_log",
    "expiring_agreements",
    "governance_report",
    "open_store",
    "pending_overrides",
    "read_topic",
    "record_hash",
    "review_override",
    "review_record",
    "signed_checkpoints",
    "subject_key_for_nhs_number",
    "verify_chain",
    "verify_records",
    "verify_store",
    "verify_truncation",
]
