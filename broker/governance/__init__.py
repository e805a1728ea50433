"""The governance side of the audit log: what IG officers and their tools read and write.

The :class:`Indexer` consumes ``accord.audit`` into an :class:`AuditStore` (SQLite by
default, PostgreSQL in production), taking only what each chain's writer signed and
verifying every chain and checkpoint as it goes (:func:`signed_chains` does the same for a
read of the topic itself);
:func:`verify_store` and :func:`verify_records` prove the log intact; :func:`disclosure_log`
(decisions, deliveries, openings, consent and withdrawal notices) and
:func:`governance_report` answer subject access requests and oversight questions
(:func:`subject_search` finds the keys a child is filed under, by NHS number or by name);
:func:`late_encompass_notices` lists Operation Encompass notices a school read late or not at
all; :func:`events_signed_by` the events accepted under a signing key (a stolen key's);
:func:`policy_impact_runs` lists runs of ``accord policy impact``;
:func:`review_override` records a safeguarding override's review, and :func:`record_query` an
officer's look-up, in the log itself, through a :class:`ChainAppender`, the one writer of a
console's own chain.

The records, chains and checkpoints themselves are ``broker.audit``'s.
"""

from broker.governance._append import AuditSink, ChainAppender
from broker.governance._dialects import open_store
from broker.governance._disclosure import disclosure_log, override_entry
from broker.governance._disclosure_entry import DisclosureEntry
from broker.governance._encompass import (
    EncompassNotice,
    late_by_school,
    late_encompass_notices,
    overdue_encompass_notices,
)
from broker.governance._impacts import PolicyImpactRun, policy_impact_runs
from broker.governance._index import Indexer, IndexSummary
from broker.governance._index_url import (
    describe_url,
    index_url_problem,
    not_a_database,
    same_index,
    sqlite_file,
    url_scheme,
)
from broker.governance._keys_loaded import KeysLoaded, keys_loaded
from broker.governance._lookups import (
    VIA_WORDS,
    LookupPurpose,
    ReportPurpose,
    earlier_lookups,
    lookup_via,
    record_query,
)
from broker.governance._pg_connect import why_not_connected
from broker.governance._reasons import (
    CONSENT_MEANINGS,
    NOTICE_MEANINGS,
    REASON_MEANINGS,
    LegendLine,
    reason_legend,
)
from broker.governance._reports import (
    GovernanceReport,
    ReviewedOverride,
    expiring_agreements,
    governance_report,
    pending_overrides,
    reviewed_overrides,
)
from broker.governance._review import (
    ReviewFinding,
    ReviewStatus,
    check_review,
    reference_acceptable,
    review_override,
)
from broker.governance._sent import answer_notes
from broker.governance._signed_by import SignedEvent, events_signed_by, is_key_id
from broker.governance._store import AuditStore, VerifyRun, Window
from broker.governance._subjects import SubjectSearch, subject_key_for_nhs_number, subject_search
from broker.governance._topic import TopicChains, TopicMessage, read_topic, signed_chains
from broker.governance._verify import (
    IndexView,
    VerifySummary,
    index_view,
    newest_checkpoints,
    signed_checkpoints,
    verification_state,
    verify_and_keep,
    verify_records,
    verify_store,
)
from broker.governance._verify_vouch import VerifiedHead

__all__ = [
    "CONSENT_MEANINGS",
    "NOTICE_MEANINGS",
    "REASON_MEANINGS",
    "VIA_WORDS",
    "AuditSink",
    "AuditStore",
    "ChainAppender",
    "DisclosureEntry",
    "EncompassNotice",
    "GovernanceReport",
    "IndexSummary",
    "IndexView",
    "Indexer",
    "KeysLoaded",
    "LegendLine",
    "LookupPurpose",
    "PolicyImpactRun",
    "ReportPurpose",
    "ReviewFinding",
    "ReviewStatus",
    "ReviewedOverride",
    "SignedEvent",
    "SubjectSearch",
    "TopicChains",
    "TopicMessage",
    "VerifiedHead",
    "VerifyRun",
    "VerifySummary",
    "Window",
    "answer_notes",
    "check_review",
    "describe_url",
    "disclosure_log",
    "earlier_lookups",
    "events_signed_by",
    "expiring_agreements",
    "governance_report",
    "index_url_problem",
    "index_view",
    "is_key_id",
    "keys_loaded",
    "late_by_school",
    "late_encompass_notices",
    "lookup_via",
    "newest_checkpoints",
    "not_a_database",
    "open_store",
    "overdue_encompass_notices",
    "override_entry",
    "pending_overrides",
    "policy_impact_runs",
    "read_topic",
    "reason_legend",
    "record_query",
    "reference_acceptable",
    "review_override",
    "reviewed_overrides",
    "same_index",
    "signed_chains",
    "signed_checkpoints",
    "sqlite_file",
    "subject_key_for_nhs_number",
    "subject_search",
    "url_scheme",
    "verification_state",
    "verify_and_keep",
    "verify_records",
    "verify_store",
    "why_not_connected",
]
