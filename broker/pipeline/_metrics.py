"""Prometheus metrics for the worker, registered on an injected ``CollectorRegistry``.

Labels are party ids, outcomes, reasons and kinds: never anything about a person.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from broker.errors import EnvelopeError
from broker.policy import ConsentRefusal

# Fine around 100 ms, a contact's target from publish to a recipient's open.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0)  # fmt: skip


CONSENT_REFUSED_REASONS: tuple[str, ...] = get_args(ConsentRefusal)
CONSENT_IGNORED_REASONS = tuple(r for r in CONSENT_REFUSED_REASONS if r.startswith("unknown-"))
#: The stages' own quarantine reasons (docs/operations.md, "Quarantine reason codes"); an
#: envelope's are its errors' ``reason``s (``quarantine_reasons``).
_STAGE_REASONS: tuple[str, ...] = (
    "malformed", "undecodable-header", "replay", "unknown-sender", "wrong-topic", "unkeyed",
    "wrong-partition", "wrong-schema", "invalid-event", "sender-mismatch", "id-mismatch",
    "invalid-consent", "invalid-ack", "redaction-failed", "stage-failed", "unknown-topic",
)  # fmt: skip
TRANSACTION_RESULTS: tuple[str, ...] = ("committed", "aborted", "unconfirmed")


def quarantine_reasons() -> tuple[str, ...]:
    """Every reason a record is quarantined for, each a series from 0 at start."""
    found: list[str] = []
    todo: list[type[EnvelopeError]] = [EnvelopeError]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls is not EnvelopeError:
            found.append(cls.reason)
    return tuple(sorted({*found, *_STAGE_REASONS}))


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._children: dict[tuple[Counter, tuple[str, ...]], Any] = {}
        self.received = Counter(
            "accord_events_received",
            "Valid contact events received, by sender.",
            ["sender"],
            registry=registry,
        )
        self.decisions = Counter(
            "accord_decisions",
            "Decisions, by recipient and outcome.",
            ["recipient", "outcome"],
            registry=registry,
        )
        # Counted where a share is turned into a refusal for want of a key (rare: a party
        # onboarded without keys in the signed directory); every party of the bundle in force
        # has a series from the start (``parties``), so the alert sees the first one.
        self.key_unavailable = Counter(
            "accord_recipient_key_unavailable",
            "Shares refused because the recipient has no usable key in the signed directory "
            "(decided not_shared, reason recipient-key-unavailable), by recipient.",
            ["recipient"],
            registry=registry,
        )
        self.quarantined = Counter(
            "accord_quarantined",
            "Records quarantined, by reason.",
            ["reason"],
            registry=registry,
        )
        # By reason alone (the codes of ConsentRefusal: bounded); which word a record did not
        # know is in the audit record and the warning, never a label.
        self.consent_refused = Counter(
            "accord_consent_refused",
            "Consent records refused on arrival and never filed, by reason "
            "(not-a-consent-authority, party-inactive, unknown-purpose, unknown-recipient, "
            "outside-authority).",
            ["reason"],
            registry=registry,
        )
        # By reason alone, as consent_refused; the words are in the audit record and the log.
        self.consent_terms_ignored = Counter(
            "accord_consent_terms_ignored",
            "Purposes and recipients of withdrawals filed that the bundle did not know and "
            "ignored (the rest of each took effect), by reason (unknown-purpose, "
            "unknown-recipient).",
            ["reason"],
            registry=registry,
        )
        # Every reason from 0 at start: a first refusal after a restart then shows as a rise
        # (alerts: increase()), and not as a series that merely reappears.
        for reason in CONSENT_REFUSED_REASONS:
            self.consent_refused.labels(reason)
        for reason in CONSENT_IGNORED_REASONS:
            self.consent_terms_ignored.labels(reason)
        # Likewise: a tampered or key-rejected record after a restart must page someone,
        # and increase() sees nothing of a series that first appears at 1.
        for reason in quarantine_reasons():
            self.quarantined.labels(reason)
        self.acks_withheld = Counter(
            "accord_access_acks_withheld",
            "Openings recorded with a field of the acknowledgement withheld (by: it held an "
            "NHS or telephone number; purpose: that, or no purpose of the bundle), by field.",
            ["field"],
            registry=registry,
        )
        self.audit_records = Counter(
            "accord_audit_records",
            "Audit records written, by kind.",
            ["kind"],
            registry=registry,
        )
        self.latency = Histogram(
            "accord_pipeline_latency_seconds",
            "From the input record's Kafka timestamp to its transaction's commit.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        # The two parts of that latency the worker does not spend processing: where a slow
        # p99 comes from is the first thing an operator needs to know.
        self.wait = Histogram(
            "accord_pipeline_wait_seconds",
            "From the input record's Kafka timestamp to the start of its processing "
            "(time on the topic and in the worker's fetch).",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.transaction_time = Histogram(
            "accord_transaction_seconds",
            "A committed Kafka transaction, from its beginning to Kafka's acknowledgement "
            "of the commit.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.lag = Gauge(
            "accord_consumer_lag",
            "Records behind the end of each input topic, summed over the partitions this "
            "worker holds, paused ones included (offsets: a transaction's commit marker "
            "counts one); refreshed every second.",
            ["topic"],
            registry=registry,
        )
        self.transactions = Counter(
            "accord_transactions",
            "Kafka transactions, by result.",
            ["result"],
            registry=registry,
        )
        for result in TRANSACTION_RESULTS:  # an abort's alert, as the quarantine's above
            self.transactions.labels(result)
        self.throttled = Counter(
            "accord_sender_throttled",
            "Times a sender's ingress topic was paused for going over its budget.",
            ["sender"],
            registry=registry,
        )
        self.state_refused = Counter(
            "accord_state_entries_refused",
            "State changelog entries refused at restore (no valid MAC, unreadable), by kind.",
            ["kind"],
            registry=registry,
        )
        self.state_stale = Gauge(
            "accord_worker_state_entries_stale",
            "Consent entries in the state changelog (the whole table, every worker's) sealed "
            "to, or signed by, a worker key other than this worker's current ones.",
            registry=registry,
        )
        self.policy_version = Gauge(
            "accord_policy_loaded",
            "1 for the policy bundle version in force.",
            ["version"],
            registry=registry,
        )

        self.kafka_answered = Gauge(
            "accord_kafka_last_fetch_answered_timestamp_seconds",
            "When Kafka last answered one of the worker's fetches (Unix time; 0 before the first).",
            registry=registry,
        )

    def parties(self, parties: Iterable[str]) -> None:
        """A zero series of ``accord_recipient_key_unavailable_total`` for each party (bounded:
        the bundle's), so that an alert on its increase fires on the first refusal, which a
        series born at 1 would not show."""
        for party in parties:
            self.key_unavailable.labels(party)

    def follow_stale(self, stale: Callable[[], int]) -> None:
        """``accord_worker_state_entries_stale`` reads ``stale()`` at every scrape: the view
        changes with each entry the changelog's tail reads (a re-seal read back, a straggler
        filed under an old key), and a count asked for costs nothing (``SealedEntries``)."""
        self.state_stale.set_function(stale)

    def count(self, metric: Counter, *labels: str) -> None:
        """``metric.labels(*labels).inc()``, with the child looked up once per label set.

        The worker counts about fourteen things per event; ``labels()`` takes a lock and
        builds its key each time, which is most of a counter's cost.
        """
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        child.inc()
