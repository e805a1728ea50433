"""What the stages may consult: the policy in force, keys, linkage and the state, read-only."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from broker.config import EnvelopeSettings
from broker.envelope import KeyResolver, Opener, Sealer
from broker.linkage import Linker
from broker.pipeline._effects import OutRecord, Publish
from broker.pipeline._encoding import payload_json
from broker.pipeline._state import WorkerState
from broker.policy import Policy
from broker.principals import Principal


class _SeenBefore:
    """The envelope's replay check, answered from the durable state.

    It only reads: the stage that settles the record returns ``MarkProcessed``, and the
    ``Outbox`` records it, with everything else the record produced.
    """

    def __init__(self, state: WorkerState) -> None:
        self._state = state

    def first_sighting(self, event_id: str) -> bool:
        return not self._state.seen(event_id)


class Services:
    """One worker's keys, linkage, state and policy, shared by every stage of every chain."""

    def __init__(
        self,
        *,
        policy: Policy,
        keys: KeyResolver,
        linker: Linker,
        state: WorkerState,
        clock: Callable[[], datetime],
        envelope: EnvelopeSettings,
        pseudonym_key: bytes,
    ) -> None:
        self.policy = policy  # replaced, between records, when a new bundle is put in force
        self.linker = linker
        self.state = state
        self.clock = clock
        self.pseudonym_key = pseudonym_key

        def ts() -> float:
            return clock().timestamp()

        self.opener = Opener(Principal.WORKER, keys, replay_guard=_SeenBefore(state), clock=ts)
        self.sealer = Sealer(Principal.WORKER, keys, envelope, clock=ts)

    def sealed(
        self, payload: dict[str, Any], *, event_id: str, recipient: str, schema: str, topic: str
    ) -> Publish:
        """``payload`` sealed to ``recipient``, as a record for ``topic`` keyed by ``event_id``."""
        sealed = self.sealer.seal(
            payload_json(payload),  # built from the event: no floats
            event_id=event_id,
            recipient=recipient,
            schema=schema,
            topic=topic,
        )
        return Publish(OutRecord(topic, event_id.encode(), sealed.value, tuple(sealed.headers)))
