"""The changelog as committed, for every task: what a worker knows of the whole group.

Built by the restore at start-up and kept current by the changelog's tail (``_tail``), it
holds every task's committed replay ids, shares, chain head and offset, and the one consent
table every task reads. A worker that is given a partition starts that task from here, once
the tail has read past anything the partition's previous owner could still commit.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict

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
        # Sealed entries (consent) opened with a worker key that is no longer its current
        # one, by changelog key: plaintext the worker seals again at start (``_restore``).
        self.resealable: dict[str, bytes] = {}

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


def _set(table: dict[str, list[ConsentShare]], key: str, shares: list[ConsentShare]) -> None:
    if shares:
        table[key] = shares
    else:
        table.pop(key, None)
