"""The committed view every worker keeps: each task's state apart, one consent table for
all, and the entries an older, single-worker Accord wrote still honoured."""

from __future__ import annotations

import json
from collections.abc import Callable

from broker.events import ConsentRecord
from broker.pipeline._effects import ConsentShare, FileConsent, MarkProcessed, NoteShare
from broker.pipeline._processor import Processor
from broker.pipeline._state import TaskId, WorkerState, share_dict
from broker.pipeline._view import LEGACY_SHARES_TASK, StateView
from broker.topics import ingress

WMP0, WMP1 = TaskId(ingress("wmp"), 0), TaskId(ingress("wmp"), 1)
RECORD = ConsentRecord.model_validate({
    "subject": {"nhs_number": "9990000018"}, "state": "given", "purposes": ["early_help"],
    "recipients": ["kind:hub"], "recorded_by": "sandwell-coord",
    "recorded_at": "2026-10-01T09:00:00Z",
})  # fmt: skip


def _through(view: StateView, state: WorkerState, *changes: object) -> None:
    for c in changes:
        entry = state.change(c)  # type: ignore[arg-type]  # the changes are StateChanges
        view.apply(entry.key, entry.value)


def test_a_tasks_replay_ids_and_shares_are_its_own_and_consent_is_everyones() -> None:
    view = StateView()
    share = ConsentShare("cog-tipton", "hub", "early_help", "e-1", "2026-10-01T09:00:00+00:00")
    _through(view, WorkerState(WMP0), MarkProcessed("e-1"), NoteShare("n:abc", share),
             FileConsent("c-1", ("n:abc", "d:xyz"), RECORD))  # fmt: skip
    mine, other = view.task_state(WMP0), view.task_state(WMP1)
    assert mine.seen("e-1")
    assert not other.seen("e-1")
    assert mine.shares == {"n:abc": [share]}
    assert other.shares == {}
    assert other.consents_for(("d:xyz",)) == [RECORD]  # filed once, found by every key


def test_a_replay_id_stays_fresh_until_its_transaction_commits() -> None:
    """A task given up before its commit must leave nothing behind in the shared ids."""
    view = StateView()
    state = view.task_state(WMP0)
    state.change(MarkProcessed("e-1"))
    assert state.seen("e-1")
    assert "e-1" not in view.tasks[WMP0].processed
    state.settle(state.take_marked())
    assert "e-1" in view.tasks[WMP0].processed
    assert state.fresh == set()


def test_an_older_accords_entries_still_count() -> None:
    """Processed ids by any task, consent lists, and shares to be adopted."""
    view = StateView()
    view.apply("r:e-old", b"1")
    view.apply("c:n:abc", json.dumps([RECORD.model_dump(mode="json")]).encode())
    old = ConsentShare("cog-tipton", "hub", "early_help", "e-old")
    view.apply("s:n:abc", json.dumps([share_dict(old)]).encode())
    assert view.task_state(WMP1).seen("e-old")
    assert view.task_state(WMP0).consents_for(("n:abc",)) == [RECORD]
    [filed] = view.consents.filed
    assert "n:abc" not in filed.record_id  # it names the record in notices recipients read
    assert view.legacy_shares == {"n:abc": [old]}


def test_the_consent_tasks_adopts_an_older_accords_shares_and_retires_them(
    make_processor: Callable[..., Processor],
) -> None:
    view = StateView()
    old = ConsentShare("cog-tipton", "hub", "early_help", "e-old")
    view.apply("s:n:abc", json.dumps([share_dict(old)]).encode())
    processor = make_processor(state=view.task_state(LEGACY_SHARES_TASK))
    for record in processor.adopt(view.legacy_shares):
        assert record.key is not None
        view.apply(record.key.decode(), record.value)
    assert view.legacy_shares == {}
    assert view.task_state(LEGACY_SHARES_TASK).shares == {"n:abc": [old]}
