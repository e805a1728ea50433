"""Filling the store from one poll: deliveries once each, notices hiding at once, and the
desk acknowledging nothing by itself (only people's views are acknowledged)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from broker.desk import DeskIngest, DeskStore, children_in
from broker.events import Delivery, WithdrawalNotice
from tests.unit.desk.conftest import SECRET, Clock, delivery


@dataclass
class Shared:
    message: Delivery | WithdrawalNotice


class FakeSubscriber:
    def __init__(self) -> None:
        self.batches: list[list[Shared]] = []
        self.acks: list[Any] = []

    async def poll(self, wait: float) -> list[Shared]:
        del wait
        return self.batches.pop(0) if self.batches else []

    async def acknowledge(self, *args: Any, **kwargs: Any) -> None:
        self.acks.append((args, kwargs))


def notice(*event_ids: str) -> WithdrawalNotice:
    return WithdrawalNotice(
        notice_id="n-1", recipient="sandwell-coord", event_ids=event_ids,
        purposes=("early_help",), withdrawn_at=datetime(2026, 11, 24, 9, 0, tzinfo=UTC),
    )  # fmt: skip


async def test_a_redelivered_record_is_stored_once_and_a_notice_hides_within_one_poll(
    store: DeskStore, clock: Clock
) -> None:
    sub = FakeSubscriber()
    ingest = DeskIngest(store, sub, linkage_key=SECRET, clock=clock)  # type: ignore[arg-type]  # the fake
    sub.batches = [
        [Shared(delivery("e1")), Shared(delivery("e2")), Shared(delivery("e1"))],
        [Shared(notice("e1"))],
    ]
    assert await ingest.poll_once(0) == 2
    [child] = children_in(delivery("e1").view, SECRET)
    assert [r.event_id for r in store.records_about(child)] == ["e1", "e2"]
    assert await ingest.poll_once(0) == 1  # the very next poll hides it
    hidden = store.record("e1")
    assert hidden is not None
    assert hidden.hidden
    assert hidden.hidden_reason == (
        "Consent withdrawn for early help on 2026-11-24 09:00 GMT: stop using this record."
    )
    assert sub.acks == []  # software opens nothing: only a person's view is acknowledged


def test_children_are_the_child_subjects_or_everyone_when_no_roles_travel() -> None:
    with_roles = {"subjects": [
        {"role": "parent", "given_name": "A", "family_name": "B", "dob": "1990-01-01"},
        {"role": "child", "nhs_number": "9993080233"},
    ]}  # fmt: skip
    without_roles = {"subjects": [{"given_name": "A", "family_name": "B", "dob": "2016-01-01"}]}
    assert len(children_in(with_roles, SECRET)) == 1
    assert len(children_in(without_roles, SECRET)) == 1
    assert children_in({"subjects": [{"given_name": "A"}]}, SECRET) == []  # cannot be keyed
