"""The topics a deployment needs, each with the retention its contents call for."""

from __future__ import annotations

from broker import topics
from broker.config import KafkaSettings
from broker.kafka import accord_topics


def _specs() -> dict[str, dict[str, str]]:
    specs = accord_topics(["wmp"], ["sandwell-coord"], KafkaSettings(partitions=3))
    return {s.name: s.config for s in specs}


def test_consent_records_are_kept_not_compacted() -> None:
    """Each record has its own random key, so compaction would keep nothing "latest"; the
    records are the basis of shares and are kept."""
    consent = _specs()[topics.CONSENT]
    assert consent.get("cleanup.policy", "delete") == "delete"
    assert consent["retention.ms"] == "-1"


def test_the_audit_log_is_never_deleted_and_the_state_is_compacted() -> None:
    specs = _specs()
    assert specs[topics.AUDIT]["retention.ms"] == "-1"
    assert specs[topics.AUDIT]["retention.bytes"] == "-1"
    assert specs[topics.STATE]["cleanup.policy"] == "compact"


def test_one_ingress_topic_per_agency_and_one_delivery_topic_per_recipient() -> None:
    specs = _specs()
    assert topics.ingress("wmp") in specs
    assert topics.deliver("sandwell-coord") in specs
    assert topics.ingress("sandwell-coord") not in specs
