"""Every package's public surface, pinned in one place (httpx-style).

A name joins or leaves a package's ``__all__`` only on purpose, with this list changed in
the same commit; everything else lives in private ``_x.py`` modules.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import broker

SURFACES = {
    "broker": {"__version__"},
    "broker.audit": {
        "GENESIS", "AuditKind", "AuditRecord", "ChainReport", "ChainWriter", "CheckpointSigner",
        "CheckpointVerifier", "KeystoreAuditSigner", "KeystoreAuditVerifier", "PreEncoded",
        "WRITER_KINDS", "chain_writer", "check_next", "jcs_text", "may_write", "read_record",
        "record_hash", "verify_chain", "verify_truncation",
    },
    "broker.cli": {"build_app", "main"},
    "broker.config": {
        "AuditSettings", "ConsoleSettings", "DeskSettings", "EnvelopeSettings", "EventLoop",
        "IndexerSettings",
        "GatewaySettings",
        "KafkaSecurity", "KafkaSettings", "KemSuite", "KeystoreSettings", "Network", "OpsEndpoint",
        "SchoolCalendar", "SignInSettings", "DEMO_PASSPHRASE_FILE", "KeyProtection",
        "Settings", "WorkerSettings", "check_environment", "default_home", "load_settings",
        "read_secret_file",
    },
    "broker.console": {
        "DEMO_INSTANCE", "ConsoleDeps", "ConsoleRun", "TotpBox", "UserFile", "check_instance",
        "check_username", "console_chain", "create_app", "load_console_policy", "run_console",
    },
    "broker.desk": {
        "LINKAGE_FILE", "LINKAGE_SECRET", "Acknowledger", "ChildState", "DeskDeps", "DeskIngest",
        "DeskRun",
        "DeskStore", "EventPublisher", "Flag", "FlagEngine", "FlagServiceOptions", "WindowRecord",
        "HouseholdMessage", "HouseholdState", "household_key",
        "build_flags_app", "check_desk_party", "child_key", "children_in", "create_desk_app",
        "desk_linkage_key", "encompass_notice", "flag_id", "flags_ops", "flags_topic",
        "linkage_secret_name", "log_flags_started",
        "open_desk_store",
        "outcome_event", "referral_event", "run_desk", "run_flag_scenario", "sighup_ignored",
        "warn_if_another_instance", "window_record", "withdrawn_keep",
    },
    "broker.gateway": {
        "AuthLimit", "ConsentGate", "GatewayDeps", "GatewayMetrics", "GatewayRun", "Publishing",
        "check_gateway", "create_gateway_app", "run_gateway",
    },
    "broker.deploy": {
        "CONSOLE_OPS_PORT", "CONSOLE_PORT", "DESK_OPS_PORT", "DESK_PORT", "FLAGS_OPS_PORT",
        "GATEWAY_OPS_PORT", "GATEWAY_PORT", "INDEXER_OPS_PORT", "MANIFEST", "WORKER_OPS_PORT",
        "Deployment", "Process", "Target", "acl_grants", "alert_rules_text", "dashboard_text",
        "deployment", "exported_metric_names", "kubernetes_files", "platform_secrets",
        "prometheus_config",
        "promql_metric_names", "removal_commands", "render_files", "shipped_expressions",
        "write_render",
    },
    "broker.crypto": {
        "AEAD_KEY_LEN", "AEAD_NONCE_LEN", "AEAD_TAG_LEN", "ED25519_SIG_LEN", "HPKE_AEAD_ID",
        "HPKE_KDF_ID", "Aead", "KemAlg", "KemPrivateKey", "KemPublicKey", "SigningKey",
        "VerifyKey", "hpke_open", "hpke_seal", "random_bytes", "scrypt_kek", "tls_ca", "tls_hosts",
        "tls_leaf", "tls_not_after",
    },
    "broker.devkafka": {
        "KAFKA_VERSION", "BrokerStatus", "EmbeddedKafka", "ensure_kafka_jars", "free_port",
        "new_cluster_id", "pom_path", "SHARED_BROKER_SETTINGS", "TRANSACTION_MAX_TIMEOUT_MS",
    },
    "broker.envelope": {
        "DEK_BUNDLE_HEADER", "VERSION", "Clock", "InMemoryReplayGuard", "KeyAlg", "KeyInfo",
        "KeyPurpose", "KeyResolver", "KeyStatus", "OpenedRecord", "Opener", "RecordHeader",
        "ReplayGuard", "SealedRecord", "Sealer", "SignedBundle", "SigningIdentity",
        "canonical_json", "claimed_key_ids", "claimed_signer", "compute_key_id", "is_identifier",
        "read_header", "signed_bundle", "verify_detached",
    },
    "broker.errors": {
        "AccordError", "AlreadySettled", "AuditError", "BadSignature", "BundleInvalid",
        "ChainBroken", "ConfigError", "DekUnopenable", "DevKafkaError", "EnvelopeError",
        "EventInvalid", "Fenced", "IndexUnavailable",
        "KeyNotFound", "KeyRejected", "KeyStoreError", "MalformedEnvelope", "PolicyError",
        "RecordKeyUnavailable", "RecordedAlready", "ReplayDetected",
        "ScenarioInvalid", "SecondFactorUnreadable", "SendUnconfirmed", "SignInFailed", "StoreBusy",
        "StoreUnavailable",
        "TamperedEnvelope", "TransportError",
        "UnsupportedVersion", "UsageError", "WrongRecipient",
    },
    "broker.events": {
        "ALWAYS_TRAVELS", "CLOCK_SKEW", "EVENT_FIELD_PATHS", "EVENT_TYPES", "FIELD_PATHS",
        "REFERRAL_OUTCOMES", "ReferralOutcome", "ROLES", "SUBJECT_FIELD_PATHS", "AccessAck",
        "ConsentRecord", "ConsentState",
        "ConsentSubject", "ContactEvent", "Delivery", "EventType", "Role", "Safeguarding",
        "Subject", "WithdrawalNotice", "holds_nhs_or_telephone_number", "is_canonical_uuid",
        "is_valid_nhs_number",
        "normalise_name",
        "normalise_nhs_number", "normalise_postcode", "parse_consent", "parse_consents",
        "parse_event", "postcode_district", "postcode_sector",
        "DUPLICATE_KEY", "near_field", "no_duplicate_keys",
    },
    "broker.webauth": {
        "CSP", "LOOPBACK_NAMES", "MAX_BODY", "SECURITY_HEADERS", "USERNAME", "Account",
        "Attempt", "CookieNames", "DeviceCookies", "Flash", "Guard", "HostCheck", "Session",
        "SessionStore", "SignInThrottle", "TotpBox", "TotpEnrolment",
        "UserFile", "SignInCheck", "SignInPages", "WebPages", "accounts_ready", "add_page_basics",
        "add_sign_in_routes", "bad_body",
        "check_sign_in", "check_username", "client_host", "client_key", "cookie_names",
        "device_key", "device_secret_name", "form_field",
        "listen",
        "loopback", "read_form", "refused_in_place", "server_config", "stopped_by_sigterm",
        "url_host", "HSTS", "check_exposure", "plain_http_warning", "tls_applies",
    },
    "broker.governance": {
        "AuditSink", "AuditStore", "ChainAppender", "DisclosureEntry", "GovernanceReport",
        "answer_notes",
        "IndexSummary", "Indexer", "LookupPurpose", "ReportPurpose", "ReviewFinding", "TopicChains",
        "TopicMessage", "SubjectSearch",
        "VerifySummary", "Window", "check_review", "disclosure_log", "expiring_agreements",
        "governance_report", "newest_checkpoints", "open_store", "pending_overrides",
        "PolicyImpactRun", "policy_impact_runs", "KeysLoaded", "keys_loaded",
        "SignedEvent", "events_signed_by", "is_key_id",
        "VIA_WORDS", "lookup_via", "earlier_lookups",
        "read_topic", "record_query", "reference_acceptable", "review_override",
        "EncompassNotice", "late_by_school",
        "late_encompass_notices", "overdue_encompass_notices",
        "signed_chains", "signed_checkpoints", "subject_key_for_nhs_number", "subject_search",
        "verify_records",
        "verify_store", "VerifyRun", "verify_and_keep", "ReviewStatus", "ReviewedOverride",
        "reviewed_overrides", "override_entry", "verification_state", "IndexView", "index_view",
        "VerifiedHead", "describe_url", "same_index", "sqlite_file", "REASON_MEANINGS",
        "not_a_database", "url_scheme", "index_url_problem", "why_not_connected",
        "reason_legend", "CONSENT_MEANINGS", "NOTICE_MEANINGS", "LegendLine",
    },
    "broker.ops": {
        "OK", "Check", "Heartbeat", "OpsServer", "Probe", "first_failure", "serving_ops",
    },
    "broker.kafka": {
        "MECHANISM", "Admin", "Batch", "ClusterAccess", "Consumer", "Grant", "KafkaClients",
        "Message", "Operation", "Producer", "RebalanceListener", "ResourceKind", "TopicPartition",
        "TopicSpec", "abandon", "abandon_consumer", "abort_quietly", "access_denied",
        "accord_topics",
        "can_log_in", "change_access",
        "connecting", "client_settings", "ensure_topics", "header_key_bytes", "missing_topics",
        "murmur2", "partition_count", "partition_for",
        "quiet_leftovers", "read_access", "read_client_file", "read_retained", "stop_bounded",
        "stop_in_background", "stop_quietly", "left_running",
        "topic_configs", "translated", "undecodable", "warn_if_plaintext", "write_client_files",
        "Retained", "TLS_CLOSE_S", "bound_tls_close",
    },
    "broker.keys": {
        "ALL_PURPOSES", "SPECIAL_PRINCIPALS", "FileKeyStore", "KeyStore", "SignedDirectory",
        "directory_signer", "export_entries", "import_directory", "init_keystores",
        "keystores_under", "protect_keystores", "sign_directory", "trusted_signers",
        "UNPROTECTED_WARNING",
        "warn_if_unprotected", "LINKAGE_FILE", "LINKAGE_SECRET", "TOTP_SECRET_NAME",
        "desk_linkage_key", "device_key", "device_secret_name", "linkage_secret_name",
        "LEGACY_DEVICE_FILE", "lost_signing_keys", "lost_signing_keys_advice",
        "KeyChange", "unheld_encryption_keys", "last_signed_serial", "imported_directory",
    },
    "broker.linkage": {"Linker", "Unlinkable"},
    "broker.pipeline": {
        "Impact", "ImpactRow", "Tally", "Worker", "WorkerOptions", "check_topics", "compare",
        "record_impact", "redecide_both", "serve",
    },
    "broker.policy": {
        "bundle_files", "ARTICLE6_BASES", "PARTY_KINDS", "REASON_PRECEDENCE", "SELECTORS",
        "SPECIAL_BASES", "BASIS_LABELS", "basis_words",
        "TRANSFORMS", "Agreement", "Bundle", "Clause", "ClauseRef", "ConsentRefusal", "Decision",
        "LawfulBasis", "FLAG_VARIABLES", "HOUSEHOLD_AGGREGATES", "CompiledFlagRule", "FlagRule",
        "ExpectedFlag", "FlagScenario",
        "Outcome", "Party", "Policy", "Reason", "Restriction", "Scenario", "ScenarioResult",
        "SubjectScope", "Unevaluated", "consent_subjects", "encompass_deadline", "is_late",
        "load_bundle", "load_scenarios", "redact", "run_scenario", "run_scenarios",
        "unevaluated_conditions", "Unversioned", "changed_without_new_version", "no_candidates",
        "NoHub", "dated_notes", "inactive_reason", "no_hub",
    },
    "broker.principals": {"Principal"},
    "broker.provision": {
        "SERVICE_PRINCIPALS", "WORKER_GROUP", "WORKER_TRANSACTIONAL_ID", "Desired", "Plan",
        "desired_access", "plan_changes", "provision", "publishers", "recipients",
    },
    "broker.sdk": {
        "DEFAULT_REPLAY_RETENTION", "MAX_PROBLEMS", "AccessAck", "Delivery", "GoodRow",
        "Publisher", "Receipt", "RowProblem", "SharedRecord", "SqliteReplayMemory", "Subscriber",
        "Unopenable", "WithdrawalNotice", "default_replay_file", "read_export", "validate_batch",
    },
    "broker.synthetic": {"SyntheticFamilies", "synthetic_nhs_number", "synthetic_postcode"},
    "broker.topics": {
        "ACCESS", "AUDIT", "CONSENT", "DELIVER_PREFIX", "DESK_PREFIX", "INGRESS_PREFIX",
        "QUARANTINE", "SCHEMA_ACCESS", "SCHEMA_CONSENT", "SCHEMA_EVENT", "SCHEMA_NOTICE",
        "SCHEMA_QUARANTINE", "SCHEMA_SHARED", "STATE", "deliver", "desk_flags",
        "desk_flags_internal", "desk_flags_reader", "desk_prefix", "ingress", "party_of_ingress",
    },
}  # fmt: skip


def test_every_public_module_of_broker_is_pinned() -> None:
    public = {
        m.name
        for m in pkgutil.iter_modules(broker.__path__, "broker.")
        if not m.name.rsplit(".", 1)[1].startswith("_")
    }
    assert public | {"broker"} == set(SURFACES)


@pytest.mark.parametrize("module", sorted(SURFACES))
def test_public_names_are_exactly_the_pinned_ones(module: str) -> None:
    mod = importlib.import_module(module)
    assert set(mod.__all__) == SURFACES[module]
    for name in mod.__all__:
        assert hasattr(mod, name), name
