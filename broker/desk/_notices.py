"""A school desk's Operation Encompass notices, and the gauge of those read late."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from broker.config import SchoolCalendar
from broker.desk._app import Desk
from broker.desk._store import DeskStore, StoredRecord
from broker.desk._work import ENCOMPASS_TYPE, EncompassNotice, encompass_notice
from broker.errors import StoreUnavailable

__all__ = ["LateNotices", "desk_notices", "notice_of"]

log = structlog.get_logger("accord.desk")


class LateNotices(Collector):
    """``accord_desk_encompass_late_notices``: notices not read by their deadline (first
    opened by a signed-in person, its acknowledgement sent, or acknowledged as read), as
    ``accord audit report`` counts them."""

    def __init__(self, desk: Desk) -> None:
        self._desk = desk

    def collect(self) -> Any:
        # A notice hidden since (consent withdrawn) cannot be acknowledged: it is no one's
        # work, and counting it would raise an alert for good.
        try:
            late = sum(n.late for n in desk_notices(self._desk) if not n.record.hidden)
        except StoreUnavailable:
            # Left out, not the scrape failed: a failed scrape reads as the desk down
            # (AccordDeskDown) and loses the other gauges. Each scrape meets the outage again,
            # so a debug line only; the pages and the ingest say it where it matters.
            log.debug("desk_late_notices_unread")
            return
        gauge = GaugeMetricFamily(
            "accord_desk_encompass_late_notices",
            "Operation Encompass notices not opened (nor acknowledged as read) by the start "
            "of the next school day",
        )
        gauge.add_metric([], late)
        yield gauge


def desk_notices(desk: Desk) -> list[EncompassNotice]:
    deps = desk.deps
    now = deps.clock()
    return [
        notice_of(deps.store, r, calendar=deps.schools, now=now)
        for r in deps.store.records(event_type=ENCOMPASS_TYPE)
    ]


def notice_of(
    store: DeskStore, record: StoredRecord, *, calendar: SchoolCalendar, now: datetime
) -> EncompassNotice:
    """The notice with who first opened it and who acknowledged it as read, from the store."""
    return encompass_notice(
        record, store.encompass_ack(record.event_id), calendar=calendar, now=now,
        opened=store.encompass_first_opened(record.event_id),
    )  # fmt: skip
