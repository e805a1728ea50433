"""The sharing pipeline: ``accord worker``.

Each input topic has its own chain of small stages. A stage looks at one record, notes what
it learns, and returns a ``Step``: FORWARD with what it produced (records to publish, audit
entries, state changes, all as values), DROP (a refusal on purpose, with its own record of
why), or QUARANTINE with a reason code. The first stage that does not forward ends the
chain; what the stages before it produced stands, and so does a DROP's record of why, while
a quarantining stage contributes nothing; a quarantined record is sealed to the governance
principal, put on ``accord.quarantine`` and audited as ``quarantined``.

Contact events, ``accord.ingress.<agency>``:

1. ``route``    — the topic names the sender, a party of the bundle in force  (unknown-sender)
2. ``open``     — keyed by its envelope's id; envelope authenticated and decrypted; from
                  the topic's own party; its id not spent already  (unkeyed,
                  wrong-partition, envelope reason codes, wrong-topic, wrong-schema, replay)
3. ``validate`` — a valid contact event v1 from that sender, under the envelope's id
                                       (invalid-event, sender-mismatch, id-mismatch)
4. ``link``     — subject keys (keyed HMAC of NHS number or demographics), and every key
                  consent about each subject may be filed under; ``received`` audited
5. ``decide``   — the consent filed under those keys; one decision per candidate recipient;
                  every one audited as ``decided``, ``not_shared`` included; the id spent
6. ``deliver``  — for each share: redact, seal to the recipient, for
                  ``accord.deliver.<party>``; ``delivered`` audited; shares resting on consent
                  remembered; all views or none                      (redaction-failed)

Consent records, ``accord.consent``:

1. ``open``     — as above, schema ``consent-record.v1``
2. ``parse``    — a valid consent record, its id a UUID, recorded by its sender
                                                 (invalid-consent, sender-mismatch)
3. ``authorise``— its recorder is a consent authority of the bundle in force, active, and
                  within its authority; else DROP, audited as ``consent_refused`` with the
                  reason (not-a-consent-authority, party-inactive, outside-authority), the
                  id spent
4. ``file``     — filed under every subject key it may be found by; ``consent_recorded``;
                  the id spent

Every task, at the close of each transaction: ``recall`` — for each withdrawal filed (by any
worker) that covers a share this task made under a grant recorded no later than it, a notice
to that recipient (``consent_withdrawn_notice``; audited ``undelivered`` and not sent when
the recipient has no live key), and those shares forgotten. A task with
no record pending closes a transaction for a recall that is due: a quiet partition does not
hold a withdrawal notice back until its next record.

Access acknowledgements, ``accord.access``:

1. ``open``     — as above, schema ``access-ack.v1``
2. ``parse``    — a valid acknowledgement from the recipient it names  (invalid-ack,
                                                                        sender-mismatch)
3. ``record``   — ``opened`` audited (who, for what purpose: identifiers only); the id spent.
                  It is the recipient's own statement: the disclosure log lists an opening
                  only of a record the broker shared with that recipient

An envelope's event id is spent (marked processed: the same id again is a ``replay``) only
by the stage that settles its record, with the audit record that says how; ``open`` spends
nothing. A record quarantined before that (``invalid-event``, ``sender-mismatch``,
``stage-failed`` in ``link``…) leaves its id unspent: the sender's corrected re-send under
the same id is taken and decided once (an agency clock running fast makes an event "in the
future"; the agency re-sends it later), and the same record re-sent unchanged is quarantined,
and audited, again. A record quarantined after ``decide`` (``redaction-failed``) has spent
its id: its decisions are audited, and a copy would repeat them.

Every input record's key must be its envelope's event id and it must sit on the partition
that key hashes to (``wrong-partition``): replay ids are kept per partition.

An empty record, or one with a null header value, is quarantined as ``malformed``; one with a
header key that is not UTF-8 as ``undecodable-header`` (aiokafka refuses to parse it, so the
loop reads that fetch again by ``broker.kafka``'s tolerant path); a topic with no chain as
``unknown-topic``. A stage that raises quarantines the record as
``stage-failed`` (failures of the platform, such as Kafka, the disk or the worker's own
keys, still stop the worker for a restart). A share whose recipient has no live encryption key
is decided ``not_shared``/``recipient-key-unavailable`` in ``decide``, before it is audited.
The quarantine copy is bounded, so any record the ingress topic accepted can be quarantined.
Each sender has a budget: over it, its ingress topic is paused, nothing dropped (``_throttle``).

``accord policy impact`` (``_impact``) runs the same stages offline over the retained
inputs, under the bundle in force and a new one, and compares the decisions: the stages
that do not depend on the bundle (``open``, ``validate``, ``link``; a consent record's
``open`` and ``parse``) once per record, the rest up to ``decide`` once per bundle, and never
``deliver``. Nothing is sealed, delivered or written but its own ``policy_impact`` record.

Guarantees: stages run without Kafka and change nothing but the record's own work item;
the ``Outbox`` is the one place where what they produced takes hold (audit records join the
hash chain, state changes the state and its changelog). Workers share the inputs as a
consumer group; each input partition is a task with its own producer and audit chain
(``_tasks``). The edge (``_loop``, its commits in ``_commits``) commits all of a task's
batch's outputs, audit records, state changes and consumed offset in one Kafka
transaction, so each input is processed exactly once, across rebalances too; a contact
event is decided only once every consent record published before it was read is in the
table. Nothing personal is logged, labelled
or audited.
"""

from broker.pipeline._impact import (
    Impact,
    ImpactRow,
    Tally,
    compare,
    record_impact,
    redecide_both,
)
from broker.pipeline._worker import Worker, WorkerOptions, check_topics, serve

__all__ = [
    "Impact",
    "ImpactRow",
    "Tally",
    "Worker",
    "WorkerOptions",
    "check_topics",
    "compare",
    "record_impact",
    "redecide_both",
    "serve",
]
