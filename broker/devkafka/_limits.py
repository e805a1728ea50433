"""Broker settings every Accord Kafka shares: the embedded node's and the rendered clusters'
(broker.deploy), so that a limit tested here is the one production runs with."""

from __future__ import annotations

#: The longest transaction a producer may ask for (``transaction.max.timeout.ms``). While a
#: transaction is open, every read_committed reader of its partitions (the worker, the audit
#: indexer) stops at its first record; Kafka's default lets a login that may write
#: ``accord.audit`` transactionally (the console's, the worker's) hold the indexer back for
#: 15 minutes, and again. Accord's own producers ask at most 90 s (a desk's or the SDK's
#: 30 s send limit x 3, broker.sdk._bounded; 60 s for the worker's tasks, the audit chain
#: appenders and policy impact): twice that. A producer asking more fails when it starts
#: (InvalidTxnTimeoutException); tests/unit/devkafka/test_limits.py holds every one to it.
TRANSACTION_MAX_TIMEOUT_MS = 180_000

#: What these settings add to a node's ``server.properties``.
SHARED_BROKER_SETTINGS: dict[str, str] = {
    "transaction.max.timeout.ms": str(TRANSACTION_MAX_TIMEOUT_MS),
}
