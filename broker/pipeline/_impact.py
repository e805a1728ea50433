"""What a new bundle would change: the retained inputs re-decided under two bundles.

The retained records are re-decided through the worker's own stages
(``_impact_redecide``), the two runs compared into counts (``_impact_compare``), and the
run recorded here, on an audit chain of its own. Nothing in it names a child: events are
counted, never listed.

Consent governs by time, as in the worker: a consent record counts for events stamped after
it was recorded, so consent records are read from the beginning of ``accord.consent`` and
merged into the ingress by their Kafka timestamps. Events depend on one another only as
copies of one event id (every copy after the one decided is a replay), so ``--processes N``
splits the events by their key, which is their id wherever the worker would decide them
(never the consent records, which every process reads in full), and merges what comes back.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from broker.audit import AuditKind, ChainWriter, KeystoreAuditSigner
from broker.kafka import KafkaClients, stop_quietly, translated
from broker.keys import FileKeyStore
from broker.pipeline._impact_compare import (
    ConsentRow,
    Impact,
    ImpactRow,
    compare,
    consent_changes,
    view_changes,
)
from broker.pipeline._impact_redecide import Decided, Key, Tally, redecide, redecide_both
from broker.principals import Principal
from broker.provision import WORKER_TRANSACTIONAL_ID
from broker.topics import AUDIT

__all__ = [
    "ConsentRow",
    "Decided",
    "Impact",
    "ImpactRow",
    "Key",
    "Tally",
    "compare",
    "consent_changes",
    "record_impact",
    "redecide",
    "redecide_both",
    "view_changes",
]


async def record_impact(kafka: KafkaClients, keys: FileKeyStore, impact: Impact, *, by: str) -> str:
    """Write the run's ``policy_impact`` record, signed, on a chain of its own
    (``worker:impact-<id>``); return the chain. Counts, versions, party ids and who ran it
    (``by``, as ``officer``: the login name, as ``accord audit verify`` records its runs)
    only: nothing about a child.

    A chain per run, not one shared chain: the run signs as the worker (it opens the
    worker's records with the worker's keys, and the indexer takes a ``policy_impact`` only
    from a worker chain), but the running worker's chains are its own, and two runs at once
    appending to one chain would fork it. A chain of its own needs no head read first and
    can fork with nothing."""
    chain = Principal.WORKER.chain(f"impact-{uuid.uuid4().hex[:12]}")
    writer = ChainWriter(chain, clock=lambda: datetime.now(UTC))
    data = impact.as_json()
    data["officer"] = by
    records = [
        writer.append(AuditKind.POLICY_IMPACT, data=data),
        writer.checkpoint(KeystoreAuditSigner(keys, Principal.WORKER)),
    ]
    # One transaction, as every other writer's records and checkpoint: the indexer refuses
    # a record still unsigned once it has read its partition to the end of what is
    # committed, so a checkpoint sent after its record could arrive after such a refusal
    # and find its chain's history missing. The id is the run's own, under the worker's
    # granted prefix (no worker task is named ``impact-…``).
    producer = kafka.transactional_producer(
        f"{WORKER_TRANSACTIONAL_ID}.{chain.split(':', 1)[1]}", client_id="accord-policy-impact"
    )
    try:
        async with translated(f"writing to {AUDIT} at {kafka.bootstrap}"):
            await producer.start()
            async with producer.transaction():
                for rec in records:
                    await producer.send(AUDIT, rec.to_bytes(), key=chain.encode())
    finally:
        await stop_quietly(producer)
    return chain
