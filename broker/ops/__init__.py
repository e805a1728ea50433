"""Health and metrics for long-running processes: the worker, the indexer, the console.

Each serves, on its own ``metrics_host:metrics_port`` (``broker.config.OpsEndpoint``;
loopback by default), ``/metrics`` (Prometheus text from the process's own registry),
``/livez`` (200 while its main loop goes round: a ``Heartbeat``) and ``/readyz`` (200 only
when it can do its job; what that means is the process's to say, as ``Probe`` functions).
A 503 carries ``{"status": "unavailable", "reason": ...}`` with a fixed phrase, never data.
Only a ``Host`` that is an address, ``localhost`` or a listed name is answered
(``broker.ops._hosts``: DNS rebinding); any other is a 400 that says nothing more.
"""

from broker.ops._health import OK, Check, Heartbeat, Probe, first_failure
from broker.ops._server import OpsServer, serving_ops

__all__ = ["OK", "Check", "Heartbeat", "OpsServer", "Probe", "first_failure", "serving_ops"]
