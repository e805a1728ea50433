"""Whether the desk's reading of its deliveries is held on a record its keystore cannot open.

The SDK's subscriber stops on such a record rather than lose it (``RecordKeyUnavailable``,
broker.sdk._keyholds), and a restart would stop on the same one: so the desk neither crashes
nor stops answering its probes. It keeps serving what it holds, reading its flags and asking
Kafka, and says it is held three ways: one error line (``desk_ingest_held``, naming the record
and the fix), the gauge ``accord_desk_deliveries_held`` (1 while held; AccordDeskDeliveriesHeld
in broker/deploy/assets/alerts.yml) and a banner on its pages, which names no key.
"""

from __future__ import annotations

from typing import Final

import structlog
from prometheus_client import CollectorRegistry, Gauge

from broker.errors import RecordKeyUnavailable

__all__ = ["HELD_METRIC", "DeliveriesHeld"]

log = structlog.get_logger("accord.desk")
HELD_METRIC: Final = "accord_desk_deliveries_held"


class DeliveriesHeld:
    """The hold's state: ``why`` (the error's text) while held, else None. The gauge goes on
    ``registry`` (the ops server's: the public pages' /metrics does not show it)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.why: str | None = None
        self._gauge = Gauge(
            HELD_METRIC,
            "1 while the desk's reading of its deliveries is held on a record its keystore "
            "cannot open (docs/desk.md), else 0",
            registry=registry if registry is not None else CollectorRegistry(),
        )
        self._gauge.set(0)

    @property
    def held(self) -> bool:
        return self.why is not None

    def hold(self, exc: RecordKeyUnavailable) -> None:
        # Said once per record, as an error naming its place, the key and what to do.
        if self.why != str(exc):
            log.error("desk_ingest_held", why=str(exc), key_id=exc.key_id)
        self.why = str(exc)
        self._gauge.set(1)

    def resume(self) -> None:
        if self.why is not None:
            log.info("desk_ingest_resumed")
        self.why = None
        self._gauge.set(0)
