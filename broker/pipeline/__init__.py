"""The sharing pipeline: ``accord worker``.

Every input record takes one path, a chain of small stages. Each stage returns FORWARD (the
next stage runs), DROP, or QUARANTINE (the raw record is sealed to the governance key, put on
``accord.quarantine`` and audited with a reason code; the worker moves on). Contact events on
``accord.ingress.<agency>`` pass, in this order:

1. ``route``    — the topic names the sender, which must be a known agency   (unknown-sender)
2. ``open``     — envelope authenticated and decrypted; the envelope's sender must be the
                  topic's party; replays are refused                     (envelope reason codes,
                                                                           wrong-topic, replay)
3. ``validate`` — a valid contact event v1 from that sender                 (invalid-event,
                                                                             sender-mismatch)
4. ``link``     — subject keys (keyed HMAC of NHS number or demographics); consent looked up;
                  ``received`` audited
5. ``decide``   — one decision per candidate recipient; every one audited as ``decided``,
                  ``not_shared`` included
6. ``deliver``  — for each share: redact, seal to the recipient, produce to
                  ``accord.deliver.<party>``; ``delivered`` audited; shares resting on consent
                  remembered for withdrawal notices

Consent records (``accord.consent``) are opened, validated, filed by subject key
(``consent_recorded``) and, on withdrawal, answered with a notice to every past recipient under
consent (``consent_withdrawn_notice``). Access acknowledgements (``accord.access``) become
``opened`` audit records.

Guarantees: the stages are pure (no Kafka); the edge (``TransactionalLoop``) commits all of a
batch's outputs, audit records, state changes and consumed offsets in one Kafka transaction,
so each input is processed exactly once; nothing personal is logged, labelled or audited.
"""

from broker.pipeline._context import Context
from broker.pipeline._linkage import Linker, load_linkage_key
from broker.pipeline._loop import TransactionalLoop
from broker.pipeline._metrics import Metrics
from broker.pipeline._processor import GOVERNANCE, Processor
from broker.pipeline._restore import restore_state
from broker.pipeline._stages import OutRecord, Stage, Step, Verdict, Work, run_chain
from broker.pipeline._state import ConsentShare, StateEntry, WorkerState
from broker.pipeline._topics import TopicSpec, accord_topics, ensure_topics
from broker.pipeline._worker import Worker, WorkerOptions, prepare_topics, serve

__all__ = [
    "GOVERNANCE",
    "ConsentShare",
    "Context",
    "Linker",
    "Metrics",
    "OutRecord",
    "Processor",
    "Stage",
    "StateEntry",
    "Step",
    "TopicSpec",
    "TransactionalLoop",
    "Verdict",
    "Work",
    "Worker",
    "WorkerOptions",
    "WorkerState",
    "accord_topics",
    "ensure_topics",
    "load_linkage_key",
    "prepare_topics",
    "restore_state",
    "run_chain",
    "serve",
]
