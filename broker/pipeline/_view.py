"""The changelog as committed, for every task: what a worker knows of the whole group.

Built by the restore at start-up and kept current by the changelog's tail (``_tail``), it
holds every task's committed replay ids, shares, chain head and offset, and the one consent
table every task reads. A worker that is given a partition starts that task from here, once
the tail has read past anything the partition's previous owner could still commit.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict

from broker.events import ConsentRecord
from broker.pipeline._effects import ConsentShare
from broker.pipeline._state import (
    ConsentTable,
    Filed,
    TaskId,
    TaskView,
    WorkerState,
    shares_from,
)
from broker.topics import CONSENT

#: The task that adopts shares an older, single-worker Accord recorded (``s:`` entries).
LEGACY_SHARES_TASK = TaskId(CONSENT, 0)


def _task(ident: str) -> tuple[TaskId, str]:
    """``<topic>:<N>:<rest>``: the task and the rest (which may itself hold colons)."""
    topic, partition, rest = ident.split(":", 2)
    return TaskId(topic, int(partition)), rest


class StateView:
    """Every task's committed state and the consent table, from the changelog."""

    def __init__(self) -> None:
        self.tasks: defaultdict[TaskId, TaskView] = defaultdict(TaskView)
        self.heads: dict[str, tuple[int, str]] = {}
        self.consents = ConsentTable()
        self.legacy_processed: set[str] = set()
        self.legacy_shares: dict[str, list[ConsentShare]] = {}
        self.sealed = SealedEntries()

    def apply(self, key: str, value: bytes) -> None:
        """Replay one changelog entry (already opened when sensitive); later entries win.

        Raises ``ValueError``, ``KeyError`` or ``TypeError`` on an entry it cannot read.
        """
        kind, _, ident = key.partition(":")
        if kind == "p":
            task, event_id = _task(ident)
            self.tasks[task].processed.add(event_id)
        elif kind == "k":
            body = json.loads(value)
            keys = tuple(str(k) for k in body["keys"])
            self.consents.file(Filed(ident, keys, ConsentRecord.model_validate(body["record"])))
        elif kind == "t":
            task, subject_key = _task(ident)
            _set(self.tasks[task].shares, subject_key, shares_from(value))
        elif kind == "h":
            head = json.loads(value)
            self.heads[ident] = (int(head["seq"]), str(head["hash"]))
        elif kind == "o":
            topic, _, partition = ident.rpartition(":")
            self.tasks[TaskId(topic, int(partition))].offset = int(value)
        elif kind == "r":
            self.legacy_processed.add(ident)
        elif kind == "c":
            # The id names the record in withdrawal notices that recipients read: never the
            # subject key itself, which recipients must not be able to link on.
            tag = hashlib.sha256(ident.encode()).hexdigest()[:24]
            for i, raw in enumerate(json.loads(value)):
                record = ConsentRecord.model_validate(raw)
                self.consents.file(Filed(f"legacy-{tag}-{i}", (ident,), record))
        elif kind == "s":
            _set(self.legacy_shares, ident, shares_from(value))
        else:
            raise KeyError(kind)

    def task_state(self, task: TaskId) -> WorkerState:
        """A working state for ``task`` as committed: what its new owner starts from."""
        view = self.tasks[task]
        state = WorkerState(
            task,
            consents=self.consents,
            processed=view.processed,
            legacy_processed=self.legacy_processed,
        )
        state.shares = {key: list(shares) for key, shares in view.shares.items()}
        if (head := self.heads.get(task.chain)) is not None:
            state.heads[task.chain] = head
        if view.offset is not None:
            state.offsets[task] = view.offset
        return state

    @property
    def offsets(self) -> dict[TaskId, int]:
        return {task: v.offset for task, v in self.tasks.items() if v.offset is not None}


class SealedEntries:
    """The view's sealed entries (consent), by changelog key: each one's plaintext and the
    worker key it is sealed to, so that those under a key other than the worker's current
    one can be sealed to it again, at start or when a new key appears (``_reseal``).

    The plaintext is kept for every one, not only for those under an older key: a new key
    makes them all older at once, and finding them again in the changelog would mean reading
    it all, as long as a restart takes."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[str, bytes]] = {}
        self._per_key: Counter[str] = Counter()

    def put(self, name: str, key_id: str, plain: bytes) -> None:
        self.drop(name)
        self._entries[name] = (key_id, plain)
        self._per_key[key_id] += 1

    def drop(self, name: str) -> None:
        if (was := self._entries.pop(name, None)) is not None:
            self._per_key[was[0]] -= 1

    def count_not_under(self, key_id: str | None) -> int:
        """How many are sealed to a key other than ``key_id`` (none if there is no key to
        seal to): a count kept as entries come, so asking often costs nothing."""
        return 0 if key_id is None else len(self._entries) - self._per_key[key_id]

    def not_under(self, key_id: str | None) -> dict[str, bytes]:
        """The plaintext of those sealed to a key other than ``key_id``, by changelog key."""
        if key_id is None or not self.count_not_under(key_id):
            return {}
        return {name: plain for name, (k, plain) in self._entries.items() if k != key_id}

    def __len__(self) -> int:
        return len(self._entries)


def _set(table: dict[str, list[ConsentShare]], key: str, shares: list[ConsentShare]) -> None:
    if shares:
        table[key] = shares
    else:
        table.pop(key, None)
