"""Whether the desk's reading of its deliveries is held on a record its keystore cannot open.

The SDK's subscriber stops on such a record rather than lose it (``RecordKeyUnavailable``,
broker.sdk._keyholds), and a restart would stop on the same one: so the desk neither crashes
nor stops answering its probes. It keeps serving what it holds, reading its flags and asking
Kafka, and says it is held three ways: one error line (``desk_ingest_held``, naming the record
and the fix), the gauge ``accord_desk_deliveries_held`` (1 while held; AccordDeskDeliveriesHeld
in broker/deploy/assets/alerts.yml) and a banner on its pages, which names no key.

Deliveries signed by a broker key the keystore does not know yet are parked by the SDK
(broker.sdk._parked), not held: the desk reads on past them, and they arrive once the key
directory is imported. Until then the gauge ``accord_desk_deliveries_parked`` counts them
(AccordDeskDeliveriesParked) and the pages say some records could not be opened yet.
"""

from __future__ import annotations

from typing import Final

import structlog
from prometheus_client import CollectorRegistry, Gauge

from broker.errors import RecordKeyUnavailable

__all__ = ["HELD_METRIC", "PARKED_METRIC", "STORE_METRIC", "DeliveriesHeld"]

log = structlog.get_logger("accord.desk")
HELD_METRIC: Final = "accord_desk_deliveries_held"
PARKED_METRIC: Final = "accord_desk_deliveries_parked"
STORE_METRIC: Final = "accord_desk_store_unavailable"


class DeliveriesHeld:
    """The hold's state: ``why`` (the error's text) while held, else None. The gauge goes on
    ``registry`` (the ops server's: the public pages' /metrics does not show it)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.why: str | None = None
        #: How many deliveries are parked, waiting for a broker key to be imported.
        self.parked = 0
        registry = registry if registry is not None else CollectorRegistry()
        self._gauge = Gauge(
            HELD_METRIC,
            "1 while the desk's reading of its deliveries is held on a record its keystore "
            "cannot open (docs/desk.md), else 0",
            registry=registry,
        )
        self._gauge.set(0)
        self._parked = Gauge(
            PARKED_METRIC,
            "Deliveries parked because they are signed by a broker key the desk's keystore "
            "does not know yet: they open once the key directory is imported (docs/sdk.md)",
            registry=registry,
        )
        self._parked.set(0)
        # The desk's own database out of reach: nothing delivered is stored meanwhile (each
        # batch waits in the ingest), and the pages answer 503 (broker.desk._store_live).
        self._store = Gauge(
            STORE_METRIC,
            "1 while the desk's database cannot be reached: deliveries wait, unstored, and "
            "its pages answer 503 (docs/desk.md), else 0",
            registry=registry,
        )
        self._store.set(0)

    @property
    def held(self) -> bool:
        return self.why is not None

    def hold(self, exc: RecordKeyUnavailable) -> None:
        # Said once per record, as an error naming its place, the key and what to do.
        if self.why != str(exc):
            log.error("desk_ingest_held", why=str(exc), key_id=exc.key_id)
        self.why = str(exc)
        self._gauge.set(1)

    def count_parked(self, parked: int) -> None:
        self.parked = parked
        self._parked.set(parked)

    def resume(self) -> None:
        if self.why is not None:
            log.info("desk_ingest_resumed")
        self.why = None
        self._gauge.set(0)

    def store_away(self, away: bool) -> None:
        """Whether the desk's database is out of reach (the ingest says, as it finds out)."""
        self._store.set(1 if away else 0)
