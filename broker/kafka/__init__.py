"""The one seam between Accord and Kafka.

Every client is built by :class:`KafkaClients` from ``KafkaSettings``, so connection and
security settings live in one place; every process that talks to Kafka receives one (unit
tests hand in fakes with the same methods). Logins and ACLs are read and changed here too
(:func:`read_access`, :func:`change_access`). Kafka's exceptions are translated here, by
:func:`translated`, into ``broker.errors.TransportError`` (``Fenced`` when a newer producer
took over a transactional id). The Protocols name exactly what Accord uses of a client.
"""

from broker.kafka._access import (
    ClusterAccess,
    Grant,
    Operation,
    ResourceKind,
    can_log_in,
    change_access,
    read_access,
)
from broker.kafka._admin import TopicSpec, accord_topics, ensure_topics, missing_topics
from broker.kafka._clients import KafkaClients, murmur2, partition_for, warn_if_plaintext
from broker.kafka._configs import topic_configs
from broker.kafka._credentials import (
    MECHANISM,
    client_settings,
    read_client_file,
    write_client_files,
)
from broker.kafka._errors import (
    abandon,
    abandon_consumer,
    abort_quietly,
    access_denied,
    connecting,
    left_running,
    quiet_leftovers,
    stop_bounded,
    stop_in_background,
    stop_quietly,
    translated,
)
from broker.kafka._protocols import (
    Admin,
    Batch,
    Consumer,
    Message,
    Producer,
    RebalanceListener,
    TopicPartition,
)
from broker.kafka._retained import Retained, partition_count, read_retained
from broker.kafka._tls_close import TLS_CLOSE_S, bound_tls_close
from broker.kafka._tolerant import header_key_bytes, undecodable

__all__ = [
    "MECHANISM",
    "TLS_CLOSE_S",
    "Admin",
    "Batch",
    "ClusterAccess",
    "Consumer",
    "Grant",
    "KafkaClients",
    "Message",
    "Operation",
    "Producer",
    "RebalanceListener",
    "ResourceKind",
    "Retained",
    "TopicPartition",
    "TopicSpec",
    "abandon",
    "abandon_consumer",
    "abort_quietly",
    "access_denied",
    "accord_topics",
    "bound_tls_close",
    "can_log_in",
    "change_access",
    "client_settings",
    "connecting",
    "ensure_topics",
    "header_key_bytes",
    "left_running",
    "missing_topics",
    "murmur2",
    "partition_count",
    "partition_for",
    "quiet_leftovers",
    "read_access",
    "read_client_file",
    "read_retained",
    "stop_bounded",
    "stop_in_background",
    "stop_quietly",
    "topic_configs",
    "translated",
    "undecodable",
    "warn_if_plaintext",
    "write_client_files",
]
