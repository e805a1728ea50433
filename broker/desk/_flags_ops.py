"""The flag service's ops server, run by faust's worker beside the app.

faust owns the flag service's event loop (``faust.Worker.execute_from_commandline``), so the
ops server is a ``mode`` service given to the worker: started before the app, so ``/livez``
answers while faust recovers its tables, and stopped after it. The probes' beat is an
``app.task``, which faust starts only once its agents run and its tables are recovered: the
first beat is what makes the service ready (``broker.desk._probes.FlagsProbes``).

Its metrics: when the cluster's TLS certificates expire, and when Kafka last answered the
service as its party (``broker.desk._probes.KafkaContact``, asked by an ``app.task`` too): the
probes stay green while Kafka is away (a restart would not bring it back), so that gauge is
what an alert watches. And what the service has done (:mod:`._flags_counts`): records read,
skipped and failed, flags raised, and when it last committed its reading.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Gauge

from broker.config import KafkaSettings, OpsEndpoint
from broker.desk._flags_counts import FlagCounts
from broker.desk._probes import FlagsProbes, KafkaContact
from broker.kafka import KafkaClients
from broker.ops import serving_ops

if TYPE_CHECKING:
    import faust
    import mode

__all__ = ["flags_ops"]


def flags_ops(
    app: faust.App,
    endpoint: OpsEndpoint,
    kafka: KafkaSettings,
    counts: FlagCounts | None = None,
    *,
    version: str | None = None,
    registry: CollectorRegistry | None = None,
) -> mode.Service:
    """``/metrics``, ``/livez`` and ``/readyz`` of the flag service on ``endpoint``, as a
    ``mode`` service to give ``faust.Worker``; its probes' beat is added to the app's tasks.
    Its own registry (``registry``, made here unless a test gives one): the process has no
    other Accord metrics; ``counts`` (the service's ``FlagServiceOptions.counts``) adds what
    it has done (:mod:`._flags_counts`), ``version`` the bundle version it runs."""
    from mode import Service  # noqa: PLC0415  # faust's; loads only in the service

    probes = FlagsProbes(endpoint.stale_after_seconds)
    app.task(probes.run)
    own = registry if registry is not None else CollectorRegistry()
    if counts is not None:
        own.register(counts)
    if version is not None:
        loaded = Gauge(
            "accord_desk_flags_policy_loaded",
            "1 for the policy bundle version the flag service runs (it never reloads).",
            ["version"],
            registry=own,
        )
        loaded.labels(version).set(1)
    clients = KafkaClients(kafka)
    contact = KafkaContact(own, lambda: clients.consumer(client_id=f"{app.conf.id}-contact"))
    app.task(contact.run)

    class FlagsOps(Service):
        def __init__(self) -> None:
            self._stack = contextlib.AsyncExitStack()
            super().__init__()

        async def on_start(self) -> None:
            await self._stack.enter_async_context(
                serving_ops(endpoint, own, live=probes.live, ready=probes.ready,
                            kafka=kafka)
            )  # fmt: skip

        async def on_stop(self) -> None:
            probes.stopping()
            await contact.close()
            await self._stack.aclose()

    return FlagsOps()
