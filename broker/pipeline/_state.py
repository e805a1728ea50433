"""The worker's state, kept in memory and made durable as a compacted changelog topic.

The unit of work is a *task*: one input partition (``accord.ingress.<agency>``,
``accord.consent`` or ``accord.access``, partition N), processed by exactly one worker of the
group at a time, with its own transactional producer and its own audit chain
(``worker:<topic>-<N>``). Every change is a ``(key, value)`` entry the task writes to
``accord.worker.state`` in the same Kafka transaction as the outputs that caused it, so the
state rebuilt from the changelog matches exactly what was committed. Keys:

- ``p:<topic>:<N>:<event id>`` — an event id this task spent: its record was settled (decided,
  filed, refused or recorded), so a copy is a replay; a quarantined record spends none.
  Each input record's key is its envelope's event id and must sit on the partition that key
  hashes to (``Open``), so a task's own ids are all the ids a replay could repeat;
- ``k:<record id>`` — a consent record filed, with every subject key it is filed under
  (sealed: it carries the identifiers the policy engine matches on). One entry per record,
  never rewritten, so consent tasks on different workers never overwrite each other;
- ``t:<topic>:<N>:<subject key>`` — which recipients this task delivered a subject's records
  to under consent, for which purpose, event and grant, so a withdrawal can recall them;
- ``h:<chain>`` — the head of an audit chain (seq and hash), to resume after a handover;
- ``o:<topic>:<N>`` — the next input offset to process there: the consumed offsets,
  committed with the outputs they produced.

Entries an older, single-worker Accord wrote are still read: ``r:<event id>`` (processed,
by any task), ``c:<subject key>`` (the consent records filed under a key) and
``s:<subject key>`` (shares under consent, adopted by the task of ``accord.consent``
partition 0, which retires them by writing ``s:<key>`` empty).

Every entry carries a MAC (header ``accord-state-mac``: HMAC-SHA256 over its key and value as
written, under a key derived from the linkage key, which only the worker and console hold),
so a restore takes only what the worker itself wrote (``_restore``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from broker.events import ConsentRecord
from broker.pipeline._effects import (
    ConsentShare,
    FileConsent,
    MarkProcessed,
    NoteShare,
    RetireLegacyShares,
    SetHead,
    SetOffset,
    SetShares,
    StateChange,
)
from broker.principals import Principal

STATE_MAC_HEADER: Final = "accord-state-mac"


class TaskId(NamedTuple):
    """One input partition: the unit a worker owns, commits and chains."""

    topic: str
    partition: int

    @property
    def chain(self) -> str:
        """The audit chain this task writes (``worker:accord.ingress.police-0``)."""
        return Principal.WORKER.chain(f"{self.topic}-{self.partition}")

    @property
    def tag(self) -> str:
        return f"{self.topic}:{self.partition}"


#: The task of a state used outside the worker's loop (tests, ``accord policy impact``).
STANDALONE: Final = TaskId("accord.standalone", 0)


def state_mac_key(linkage_key: bytes) -> bytes:
    """The state MAC key: derived apart from subject keys and pseudonyms."""
    return hmac.new(linkage_key, b"accord/worker-state/v1", hashlib.sha256).digest()


def state_mac(mac_key: bytes, key: bytes, value: bytes) -> bytes:
    """HMAC-SHA256 over the entry's key (length-prefixed) and value, exactly as written."""
    return hmac.digest(mac_key, struct.pack(">I", len(key)) + key + value, "sha256")


@dataclass(frozen=True, slots=True)
class StateEntry:
    key: str
    value: bytes
    sensitive: bool = False  # sealed to the worker before it is written to Kafka


@dataclass(frozen=True, slots=True)
class Filed:
    """A consent record as filed: its id (the envelope's event id) and its subject keys."""

    record_id: str
    keys: tuple[str, ...]
    record: ConsentRecord


class ConsentTable:
    """Every consent record filed, by subject key: a global table every task reads.

    Records only ever join it (a withdrawal is a record of its own), so it needs no order
    between the workers that file them, and filing one twice changes nothing.
    """

    def __init__(self) -> None:
        self._by_key: dict[str, dict[str, Filed]] = {}
        self._ids: set[str] = set()
        self.filed: list[Filed] = []  # in the order this worker learnt of them
        #: Withdrawals in the order this worker learnt of them; tasks keep a cursor.
        self.withdrawals: list[Filed] = []

    def file(self, filed: Filed) -> None:
        if filed.record_id in self._ids:
            return
        self._ids.add(filed.record_id)
        self.filed.append(filed)
        for key in filed.keys:
            self._by_key.setdefault(key, {})[filed.record_id] = filed
        if filed.record.state == "withdrawn":
            self.withdrawals.append(filed)

    def consents_for(self, subject_keys: Iterable[str]) -> list[ConsentRecord]:
        seen: list[ConsentRecord] = []
        for key in subject_keys:
            for filed in self._by_key.get(key, {}).values():
                if filed.record not in seen:
                    seen.append(filed.record)
        return seen

    def filed_under(self, subject_key: str) -> list[Filed]:
        return list(self._by_key.get(subject_key, {}).values())

    def __len__(self) -> int:
        return len(self._ids)


class WorkerState:
    """A task's working state: what its stages read and its ``Outbox`` changes.

    The consent table is shared by every task of the worker; replay ids are the task's
    committed ones (shared with the worker's view of the changelog, which only ever adds to
    them) plus ``fresh`` ones not yet committed, kept apart so a task given up before its
    commit leaves nothing behind. Built standalone (tests, ``accord policy impact``) it has
    tables of its own.
    """

    def __init__(
        self,
        task: TaskId = STANDALONE,
        *,
        consents: ConsentTable | None = None,
        processed: set[str] | None = None,
        legacy_processed: frozenset[str] | set[str] = frozenset(),
    ) -> None:
        self.task = task
        self.consents = consents if consents is not None else ConsentTable()
        self.processed: set[str] = processed if processed is not None else set()
        self.fresh: set[str] = set()
        self._legacy = legacy_processed
        self._marked: list[str] = []
        self._touched: set[str] = set()
        self.shares: dict[str, list[ConsentShare]] = {}
        self.heads: dict[str, tuple[int, str]] = {}
        self.offsets: dict[tuple[str, int], int] = {}
        self.recalled_upto = 0  # how many of the table's withdrawals this task has swept

    def seen(self, event_id: str) -> bool:
        return event_id in self.fresh or event_id in self.processed or event_id in self._legacy

    def change(self, c: StateChange) -> StateEntry:
        """Apply one change; return the changelog entry that makes it durable."""
        tag = self.task.tag
        match c:
            case MarkProcessed(event_id):
                self.fresh.add(event_id)
                self._marked.append(event_id)
                entry = StateEntry(f"p:{tag}:{event_id}", b"1")
            case FileConsent(record_id, keys, record):
                self.consents.file(Filed(record_id, keys, record))
                body = {"keys": list(keys), "record": record.model_dump(mode="json")}
                entry = StateEntry(f"k:{record_id}", json.dumps(body).encode(), sensitive=True)
            case NoteShare(key, share):
                self._touched.add(key)
                entry = self._set_shares(key, [*self.shares.get(key, []), share])
            case SetShares(key, shares):
                entry = self._set_shares(key, list(shares))
            case RetireLegacyShares(key):
                entry = StateEntry(f"s:{key}", b"[]")
            case SetHead(chain, seq, digest):
                self.heads[chain] = (seq, digest)
                entry = StateEntry(f"h:{chain}", json.dumps({"seq": seq, "hash": digest}).encode())
            case SetOffset(topic, partition, offset):
                self.offsets[(topic, partition)] = offset
                entry = StateEntry(f"o:{topic}:{partition}", str(offset).encode())
            case _:  # pragma: no cover  # exhaustive
                raise AssertionError(f"unknown state change {c!r}")
        return entry

    def _set_shares(self, key: str, shares: list[ConsentShare]) -> StateEntry:
        if shares:
            self.shares[key] = shares
        else:
            self.shares.pop(key, None)
        value = json.dumps([share_dict(s) for s in shares]).encode()
        return StateEntry(f"t:{self.task.tag}:{key}", value)

    def take_marked(self) -> list[str]:
        """The ids marked since the last call: what the transaction being closed commits."""
        marked, self._marked = self._marked, []
        return marked

    def take_touched(self) -> set[str]:
        """Subjects shared under consent since the last call (for the recall)."""
        touched, self._touched = self._touched, set()
        return touched

    def settle(self, ids: Iterable[str]) -> None:
        """Their transaction committed: the ids are durable."""
        ids = list(ids)
        self.processed.update(ids)
        self.fresh.difference_update(ids)

    def consents_for(self, subject_keys: tuple[str, ...]) -> list[ConsentRecord]:
        return self.consents.consents_for(subject_keys)


def share_dict(share: ConsentShare) -> dict[str, str | None]:
    out = {
        "recipient": share.recipient,
        "recipient_kind": share.recipient_kind,
        "purpose": share.purpose,
        "event_id": share.event_id,
        "granted_at": share.granted_at,
    }
    # Written only when known, so an entry of a share without them reads as it always did.
    if share.subject is not None:
        out["subject"] = share.subject
    if share.postcode is not None:
        out["postcode"] = share.postcode
    return out


_SHARE_FIELDS = frozenset(ConsentShare.__dataclass_fields__)


def shares_from(value: bytes) -> list[ConsentShare]:
    # Fields a later Accord may add are left out rather than fail the worker reading them.
    return [
        ConsentShare(**{k: v for k, v in s.items() if k in _SHARE_FIELDS})
        for s in json.loads(value)
    ]


@dataclass
class TaskView:
    """A task's state as committed (what the next owner of its partition starts from)."""

    processed: set[str] = field(default_factory=set)
    shares: dict[str, list[ConsentShare]] = field(default_factory=dict)
    offset: int | None = None
