"""Kafka topic names and payload schema ids: the routing contract every component shares.

One ingress topic per agency and one delivery topic per recipient, so Kafka ACLs can confine
each party to its own topics (see ``deploy/``).
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ACCESS",
    "AUDIT",
    "CONSENT",
    "DELIVER_PREFIX",
    "DESK_PREFIX",
    "INGRESS_PREFIX",
    "QUARANTINE",
    "SCHEMA_ACCESS",
    "SCHEMA_CONSENT",
    "SCHEMA_EVENT",
    "SCHEMA_NOTICE",
    "SCHEMA_QUARANTINE",
    "SCHEMA_SHARED",
    "STATE",
    "deliver",
    "desk_flags",
    "desk_flags_internal",
    "desk_flags_reader",
    "desk_prefix",
    "ingress",
    "party_of_ingress",
]

INGRESS_PREFIX: Final = "accord.ingress."
DELIVER_PREFIX: Final = "accord.deliver."
#: ``accord.desk.<party>.``: everything a recipient's own desk names in Kafka.
DESK_PREFIX: Final = "accord.desk."
AUDIT: Final = "accord.audit"
QUARANTINE: Final = "accord.quarantine"
CONSENT: Final = "accord.consent"
ACCESS: Final = "accord.access"
#: The worker's own compacted changelog (replay ids, consent table, chain heads).
STATE: Final = "accord.worker.state"

SCHEMA_EVENT: Final = "contact-event.v1"
SCHEMA_CONSENT: Final = "consent-record.v1"
SCHEMA_SHARED: Final = "shared-record.v1"
SCHEMA_NOTICE: Final = "consent-withdrawn-notice.v1"
SCHEMA_ACCESS: Final = "access-ack.v1"
SCHEMA_QUARANTINE: Final = "quarantined-record.v1"


def ingress(party: str) -> str:
    return f"{INGRESS_PREFIX}{party}"


def deliver(party: str) -> str:
    return f"{DELIVER_PREFIX}{party}"


def desk_prefix(party: str) -> str:
    return f"{DESK_PREFIX}{party}."


def desk_flags(party: str) -> str:
    """The flags topic, which is also the flag service's faust app id and consumer group."""
    return f"{desk_prefix(party)}flags"


def desk_flags_reader(party: str) -> str:
    """The consumer group of the flag service's first step, which reads the party's delivery
    topic with Accord's own consumer (``broker/desk/_flags_source.py`` says why not faust's)."""
    return f"{desk_flags(party)}-open"


def desk_flags_internal(party: str) -> tuple[str, str, str, str]:
    """The flag service's own topics, as faust names them: the children's window table's
    changelog, the records keyed by child, the households' table's changelog and the records
    keyed by household. Provisioning creates them: a party may not create topics."""
    app = desk_flags(party)
    return (f"{app}-windows-changelog", f"{app}-bychild",
            f"{app}-households-changelog", f"{app}-byhousehold")  # fmt: skip


def party_of_ingress(topic: str) -> str | None:
    """The agency an ingress topic belongs to, or None for any other topic."""
    if topic.startswith(INGRESS_PREFIX) and len(topic) > len(INGRESS_PREFIX):
        return topic[len(INGRESS_PREFIX) :]
    return None
