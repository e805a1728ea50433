"""The embedded, single-node Apache Kafka used for development, the demo, tests and benchmarks.

Real Apache Kafka 4.x in KRaft mode (one process is both broker and controller), run as a JVM
process from jars that Maven copies out of Maven Central into Accord's cache once. Data stays on
disk, so stopping and starting again loses nothing. Production runs a real cluster instead
(see ``deploy/``); nothing in the worker or SDK knows the difference.
"""

from broker.devkafka._broker import BrokerStatus, EmbeddedKafka, free_port, new_cluster_id
from broker.devkafka._fetch import KAFKA_VERSION, ensure_kafka_jars, pom_path
from broker.devkafka._limits import SHARED_BROKER_SETTINGS, TRANSACTION_MAX_TIMEOUT_MS

__all__ = [
    "KAFKA_VERSION",
    "SHARED_BROKER_SETTINGS",
    "TRANSACTION_MAX_TIMEOUT_MS",
    "BrokerStatus",
    "EmbeddedKafka",
    "ensure_kafka_jars",
    "free_port",
    "new_cluster_id",
    "pom_path",
]
