"""The Kafka half of the Kubernetes target: Strimzi's custom resources (``kafka.strimzi.io/v1``,
Strimzi 0.51).

Strimzi's operators do on Kubernetes what ``accord kafka provision`` does on a cluster of
one's own: the Topic Operator makes a topic per ``KafkaTopic``, the User Operator a SCRAM
login and its ACLs per ``KafkaUser`` (and a Secret of the same name holding the password).
Both are rendered from the same :class:`~broker.deploy.Deployment`, so a ``KafkaUser``
allows exactly the grants provisioning would make, no more: :func:`acl_grants` reads them
back for the tests to compare.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from broker.deploy._model import Deployment
from broker.devkafka import TRANSACTION_MAX_TIMEOUT_MS
from broker.kafka import Grant, ResourceKind, TopicSpec

__all__ = [
    "ACCORD_SELECTOR",
    "KAFKA_SOURCE_RANGES_UNSET",
    "KAFKA_TLS_PORT",
    "STRIMZI_API",
    "acl_grants",
    "kafka",
    "kafka_topic",
    "kafka_user",
    "node_pool",
]

STRIMZI_API = "kafka.strimzi.io/v1"
#: The in-cluster listener Accord's processes use; 9094 is the one agencies reach from outside.
KAFKA_TLS_PORT = 9093
KAFKA_EXTERNAL_PORT = 9094
#: The external listener's source range until the parties' are given: no CIDR, so nothing
#: is exposed by mistake (``kafka``).
KAFKA_SOURCE_RANGES_UNSET = "SET_KAFKA_SOURCE_RANGES"
#: Every pod of Accord's own carries this label (Strimzi's carry ``part-of: strimzi-<cluster>``).
ACCORD_SELECTOR = {"app.kubernetes.io/part-of": "accord"}

Manifest = dict[str, Any]

# Grant kinds are Kafka's resource types in lower case; Strimzi spells them in camelCase.
_RESOURCE_TYPES = {
    ResourceKind.TOPIC: "topic",
    ResourceKind.GROUP: "group",
    ResourceKind.TRANSACTIONAL_ID: "transactionalId",
}
_KINDS = {strimzi: str(kind) for kind, strimzi in _RESOURCE_TYPES.items()}

# A starting point the platform team overlays (kustomize patches) to its own sizing: enough
# for the partnership's volumes (docs/performance.md), not a measured requirement.
BROKER_RESOURCES = {
    "requests": {"cpu": "1", "memory": "4Gi"},
    "limits": {"memory": "4Gi"},
}
_BROKER_VOLUME_SIZE = "100Gi"


def _metadata(name: str, cluster: str) -> Manifest:
    return {"name": name, "labels": {"strimzi.io/cluster": cluster}}


def kafka(dep: Deployment, cluster: str, source_ranges: Sequence[str] = ()) -> Manifest:
    """The cluster: KRaft on node pools, TLS and SCRAM on both listeners, ACLs enforced, the
    external listener's load balancer admitting ``source_ranges`` alone (the parties').

    Without them it admits :data:`KAFKA_SOURCE_RANGES_UNSET`, which is no range: the API
    server refuses the load balancer's Service, so Kafka is on no one's network until they
    are given (``accord deploy render`` requires them: ``_names.check_kafka_source_ranges``).

    ``spec.kafka.version`` is left out on purpose: the operator then runs its own default
    Kafka release, the one it was tested with, and upgrading Strimzi upgrades Kafka.
    """
    listener_auth = {"type": "scram-sha-512"}
    config: dict[str, Any] = {
        # A topic that should exist and does not is a configuration error (docs/operations.md).
        "auto.create.topics.enable": False,
        "default.replication.factor": dep.replication,
        "min.insync.replicas": dep.min_insync,
        "offsets.topic.replication.factor": dep.replication,
        "transaction.state.log.replication.factor": dep.replication,
        "transaction.state.log.min.isr": dep.min_insync,
        # No login may hold read_committed readers back for Kafka's default 15 minutes.
        "transaction.max.timeout.ms": TRANSACTION_MAX_TIMEOUT_MS,
    }
    return {
        "apiVersion": STRIMZI_API,
        "kind": "Kafka",
        "metadata": {"name": cluster},
        "spec": {
            "kafka": {
                "listeners": [
                    {
                        "name": "tls",
                        "port": KAFKA_TLS_PORT,
                        "type": "internal",
                        "tls": True,
                        "authentication": listener_auth,
                        # Inside the cluster only Accord's own pods may connect; Strimzi
                        # writes the NetworkPolicy that enforces it.
                        "networkPolicyPeers": [{"podSelector": {"matchLabels": ACCORD_SELECTOR}}],
                    },
                    {
                        # Agencies and recipients publish and read from their own networks.
                        "name": "external",
                        "port": KAFKA_EXTERNAL_PORT,
                        "type": "loadbalancer",
                        "tls": True,
                        "authentication": listener_auth,
                        # Strimzi copies these to the Service, whose cloud load balancer
                        # drops every other source before it reaches a broker.
                        "configuration": {
                            "loadBalancerSourceRanges": list(source_ranges)
                            or [KAFKA_SOURCE_RANGES_UNSET]
                        },
                    },
                ],
                # Strimzi's "simple" is Kafka's StandardAuthorizer with no ACL meaning deny.
                "authorization": {"type": "simple"},
                "config": config,
            },
            "entityOperator": {"topicOperator": {}, "userOperator": {}},
        },
    }


def node_pool(dep: Deployment, cluster: str) -> Manifest:
    """The brokers: every node both controller and broker, each with its own volume."""
    return {
        "apiVersion": STRIMZI_API,
        "kind": "KafkaNodePool",
        "metadata": _metadata("kafka", cluster),
        "spec": {
            "replicas": dep.brokers,
            "roles": ["controller", "broker"],
            "storage": {
                "type": "jbod",
                "volumes": [
                    {
                        "id": 0,
                        "type": "persistent-claim",
                        "size": _BROKER_VOLUME_SIZE,
                        # The audit log lives here: deleting the Kafka resource must not
                        # delete the volumes with it.
                        "deleteClaim": False,
                        "kraftMetadata": "shared",
                    }
                ],
            },
            "resources": BROKER_RESOURCES,
        },
    }


def kafka_topic(dep: Deployment, spec: TopicSpec, cluster: str) -> Manifest:
    """One topic; its resource name is the topic's own (dots are legal in object names)."""
    return {
        "apiVersion": STRIMZI_API,
        "kind": "KafkaTopic",
        "metadata": _metadata(spec.name, cluster),
        "spec": {
            "topicName": spec.name,
            "partitions": spec.partitions,
            "replicas": dep.replication,
            "config": dict(spec.config),
        },
    }


def _acl(grant: Grant) -> Manifest:
    kind = ResourceKind(grant.kind)
    if kind not in _RESOURCE_TYPES:
        raise ValueError(f"no Strimzi ACL resource for a {grant.kind} grant")
    return {
        "type": "allow",
        "resource": {
            "type": _RESOURCE_TYPES[kind],
            "name": grant.name,
            "patternType": "prefix" if grant.prefixed else "literal",
        },
        # Strimzi spells Kafka's operations as the Java enum's words: DescribeConfigs.
        "operations": ["".join(w.capitalize() for w in grant.operation.split("_"))],
        "host": grant.host,
    }


def kafka_user(dep: Deployment, user: str, cluster: str) -> Manifest:
    """``user``'s SCRAM login and one ACL rule per grant. A suspended party keeps its login
    and holds no grant: an empty list, which allows nothing."""
    return {
        "apiVersion": STRIMZI_API,
        "kind": "KafkaUser",
        "metadata": _metadata(user, cluster),
        "spec": {
            "authentication": {"type": "scram-sha-512"},
            "authorization": {
                "type": "simple",
                "acls": [_acl(g) for g in dep.grants_of(user)],
            },
        },
    }


def acl_grants(kafka_user: Mapping[str, Any]) -> set[Grant]:
    """The grants a rendered ``KafkaUser`` allows, as :class:`~broker.kafka.Grant` values:
    the reverse of :func:`kafka_user`, so the two can be compared with a provisioning plan."""
    principal = kafka_user["metadata"]["name"]
    grants = set()
    for rule in kafka_user["spec"]["authorization"]["acls"]:
        if rule.get("type", "allow") != "allow":
            raise ValueError(f"{principal}: a deny rule is not a grant")
        resource = rule["resource"]
        for operation in rule["operations"]:
            grants.add(
                Grant(
                    principal,
                    _KINDS[resource["type"]],
                    resource["name"],
                    re.sub(r"(?<=[a-z])(?=[A-Z])", "_", operation).lower(),
                    prefixed=resource.get("patternType", "literal") == "prefix",
                    host=rule.get("host", "*"),
                )
            )
    return grants
