"""The one place effects take hold: audit entries join the chain, state changes the state.

Everything a chain produced for a record goes through :meth:`Outbox.apply`, in order, and
comes out as the records its transaction commits: sealed records for recipients, the audit
chain's records, and the state changelog entries that make each change durable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from broker.audit import AuditKind, ChainWriter, CheckpointSigner
from broker.envelope import Sealer
from broker.errors import ConfigError, KeyStoreError
from broker.pipeline._effects import Audit, Effect, OutRecord, Publish, SetHead, StateChange
from broker.pipeline._metrics import Metrics
from broker.pipeline._state import STATE_MAC_HEADER, StateEntry, WorkerState, state_mac
from broker.principals import Principal
from broker.topics import AUDIT, STATE


class Outbox:
    """Applies effects to the audit chain and the state; returns the records to commit."""

    def __init__(
        self,
        *,
        chain: ChainWriter,
        signer: CheckpointSigner,
        state: WorkerState,
        sealer: Sealer,
        metrics: Metrics,
        state_mac_key: bytes,
    ) -> None:
        self.chain = chain
        self.state = state
        self.metrics = metrics
        self._signer = signer
        self._sealer = sealer
        self._mac_key = state_mac_key
        self._audit_key = chain.chain.encode()  # every record of a chain goes on one partition
        self._head_written = chain.next_seq
        self._checkpointed = -1  # next_seq just after the last checkpoint written

    def apply(self, effects: Iterable[Effect]) -> list[OutRecord]:
        out: list[OutRecord] = []
        for e in effects:
            if isinstance(e, Publish):
                out.append(e.record)
            elif isinstance(e, Audit):
                out.append(self._audit(e))
            else:
                out.append(self._state_record(self.state.change(e)))
        return out

    def checkpoint(self, *, again: bool = False) -> list[OutRecord]:
        """The chain's head, signed (nothing before the chain's first record).

        ``again``: even if the head is a checkpoint already, as when the worker's signing key
        changed, so that its old key can be revoked without leaving a chain vouched for by
        nothing but that key.
        """
        if self.chain.next_seq == 0 or (self.chain.next_seq == self._checkpointed and not again):
            return []  # nothing new to vouch for
        try:
            rec = self.chain.checkpoint(self._signer)
        except KeyStoreError as exc:  # the worker's own key, not a record: stop and say so
            raise ConfigError(
                "the worker cannot sign its audit checkpoint: it has no live signing key "
                "(revoked or expired); give it a new key (accord keys rotate)"
            ) from exc
        self._checkpointed = self.chain.next_seq
        self.metrics.count(self.metrics.audit_records, rec.kind.value)
        return [OutRecord(AUDIT, self._audit_key, rec.to_bytes())]

    def head(self) -> list[OutRecord]:
        """The chain's head as a state entry, if it moved since the last one written.

        Once per transaction rather than per record: only the head at commit matters for a
        restart, and it is one record per event fewer to write.
        """
        if self.chain.next_seq == self._head_written:
            return []
        self._head_written = self.chain.next_seq
        change: StateChange = SetHead(
            self.chain.chain, self.chain.next_seq - 1, self.chain.prev_hash
        )
        return self.apply([change])

    def reseal(self, entries: dict[str, bytes]) -> list[OutRecord]:
        """Sealed state entries written again as they are, sealed to the worker's current key."""
        return [
            self._state_record(StateEntry(key, value, sensitive=True))
            for key, value in sorted(entries.items())
        ]

    def _audit(self, e: Audit) -> OutRecord:
        encoded = self.chain.append_encoded(
            e.kind, event_id=e.event_id, party=e.party, subject_keys=e.subject_keys, data=e.data
        )
        m = self.metrics
        m.count(m.audit_records, _KIND_LABEL[e.kind])
        if e.kind is AuditKind.RECEIVED and e.party is not None:
            m.count(m.received, e.party)
        elif e.kind is AuditKind.DECIDED and e.party is not None and e.data is not None:
            m.count(m.decisions, e.party, str(e.data["outcome"]))
        elif e.kind is AuditKind.QUARANTINED and e.data is not None:
            m.count(m.quarantined, str(e.data["reason"]))
        elif e.kind is AuditKind.OPENED and isinstance(e.data, dict):
            for name in ("by", "purpose"):
                if e.data.get(f"{name}_withheld"):
                    m.count(m.acks_withheld, name)
        return OutRecord(AUDIT, self._audit_key, encoded)

    def _state_record(self, entry: StateEntry) -> OutRecord:
        key = entry.key.encode()
        value = entry.value
        headers: tuple[tuple[str, bytes], ...] = ()
        if entry.sensitive:
            sealed = self._sealer.seal(
                entry.value,
                event_id=_state_id(entry.key),
                recipient=Principal.WORKER,
                schema="worker-state.v1",
                topic=STATE,
            )
            value, headers = sealed.value, tuple(sealed.headers)
        mac = (STATE_MAC_HEADER, state_mac(self._mac_key, key, value))
        return OutRecord(STATE, key, value, (*headers, mac))


# An enum member's ``.value`` is a Python-level property lookup, eight or more per event.
_KIND_LABEL = {kind: kind.value for kind in AuditKind}


def _state_id(key: str) -> str:
    # Envelope event ids are bounded identifiers; a state key is hashed into one.
    return "state-" + hashlib.sha256(key.encode()).hexdigest()[:40]
