"""The Compose target's Kafka brokers (``_compose`` builds the rest): each node's
``server.properties``, the script that formats its storage once and runs it, its service,
and the addresses clients reach the brokers by inside the Compose network and on the host.
"""

from __future__ import annotations

from typing import Any

from broker.deploy._model import Deployment
from broker.deploy._secrets import BROKER_CN, CONTAINER_SECRETS, broker_host
from broker.devkafka import KAFKA_VERSION, SHARED_BROKER_SETTINGS
from broker.kafka import MECHANISM
from broker.principals import Principal

CONTAINER_DATA = "/var/lib/kafka/data"
INTERNAL_PORT = 9092
CONTROLLER_PORT = 9093
#: Broker ``n``'s external listener is published on the host at ``EXTERNAL_PORT + n - 1``.
EXTERNAL_PORT = 9094
_ADMIN = str(Principal.ADMIN)
_SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule"


def internal_bootstrap(dep: Deployment) -> str:
    return ",".join(f"{broker_host(n)}:{INTERNAL_PORT}" for n in range(1, dep.brokers + 1))


def external_bootstrap(dep: Deployment, host: str) -> str:
    return ",".join(f"{host}:{EXTERNAL_PORT + n - 1}" for n in range(1, dep.brokers + 1))


def server_properties(dep: Deployment, n: int, *, external_host: str) -> str:
    """Broker ``n``'s ``server.properties``: a combined broker and controller node."""
    voters = ",".join(f"{i}@{broker_host(i)}:{CONTROLLER_PORT}" for i in range(1, dep.brokers + 1))
    secrets = CONTAINER_SECRETS
    r, m = dep.replication, dep.min_insync
    props = {
        "process.roles": "broker,controller",
        "node.id": str(n),
        "controller.quorum.voters": voters,
        "controller.listener.names": "CONTROLLER",
        "listeners": (
            f"INTERNAL://:{INTERNAL_PORT},EXTERNAL://:{EXTERNAL_PORT},"
            f"CONTROLLER://:{CONTROLLER_PORT}"
        ),
        "advertised.listeners": (
            f"INTERNAL://{broker_host(n)}:{INTERNAL_PORT},"
            f"EXTERNAL://{external_host}:{EXTERNAL_PORT + n - 1}"
        ),
        "inter.broker.listener.name": "INTERNAL",
        "listener.security.protocol.map": "INTERNAL:SASL_SSL,EXTERNAL:SASL_SSL,CONTROLLER:SSL",
        "sasl.enabled.mechanisms": MECHANISM,
        "sasl.mechanism.inter.broker.protocol": MECHANISM,
        # Secrets stay in their files: Kafka's FileConfigProvider reads the admin's JAAS line
        # from the admin's own client file when the broker starts.
        "config.providers": "file",
        "config.providers.file.class": (
            "org.apache.kafka.common.config.provider.FileConfigProvider"
        ),
        f"listener.name.internal.{MECHANISM.lower()}.sasl.jaas.config": (
            f"${{file:{secrets}/{_ADMIN}.properties:sasl.jaas.config}}"
        ),
        # Every SASL listener needs a JAAS entry; the external one authenticates clients
        # only, so it names no login of its own.
        f"listener.name.external.{MECHANISM.lower()}.sasl.jaas.config": f"{_SCRAM} required;",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": f"{secrets}/kafka-{n}.pem",
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": f"{secrets}/kafka-ca.pem",
        "listener.name.controller.ssl.client.auth": "required",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:{_ADMIN};User:CN={BROKER_CN}",
        "allow.everyone.if.no.acl.found": "false",
        "log.dirs": CONTAINER_DATA,
        "default.replication.factor": str(r),
        "min.insync.replicas": str(m),
        "offsets.topic.replication.factor": str(r),
        "transaction.state.log.replication.factor": str(r),
        "transaction.state.log.min.isr": str(m),
        "share.coordinator.state.topic.replication.factor": str(r),
        "share.coordinator.state.topic.min.isr": str(m),
        # Topics are made deliberately, by provisioning, with their retention.
        "auto.create.topics.enable": "false",
        # No login may hold read_committed readers back for Kafka's default 15 minutes.
        **SHARED_BROKER_SETTINGS,
    }
    head = f"# Broker {n} of {dep.brokers}, rendered by `accord deploy render`: do not edit.\n"
    return head + "".join(f"{k}={v}\n" for k, v in props.items())


# Formats the node's storage the first time (with the admin's SCRAM login, which KRaft needs
# before any broker can authenticate another), then runs it. Kept this small on purpose:
# tests/e2e/test_deploy_kafka.py does exactly these two steps with the rendered files.
# The formatter takes the admin's password only as an argument, where any local user could
# read it (ps, /proc/PID/cmdline): so it gets it in a launcher argument file (0600, in a
# folder of its own, on tmpfs where there is one, removed when it ran). `java @file` reads
# arguments from the file only up to the main class: kafka-storage.sh names the class
# itself, before any of ours, so the script runs kafka-run-class.sh (what kafka-storage.sh
# runs) with the file first, naming the class. printf is bash's own: no process shows it.
_START_SH = f"""\
#!/bin/bash
# Rendered by `accord deploy render`: format once, then run this broker.
set -euo pipefail
config="$1"
logdir="$(sed -n 's/^log.dirs=//p' "$config")"
if [ ! -f "$logdir/meta.properties" ]; then
  (
    umask 077
    tmp=/dev/shm; [ -d "$tmp" ] && [ -w "$tmp" ] || tmp="${{TMPDIR:-/tmp}}"
    private="$(mktemp -d "$tmp/kafka-format.XXXXXX")"
    trap 'rm -rf "$private"' EXIT
    # A backslash before each backslash and double quote: the argument file's escapes.
    password="$(sed -n 's/^sasl.password=//p' {CONTAINER_SECRETS}/{_ADMIN}.librdkafka.conf \\
      | sed 's/[\\\\"]/\\\\&/g')"
    printf '%s\\n' "kafka.tools.StorageTool format" \\
      "--add-scram \\"{MECHANISM}=[name={_ADMIN},password=$password]\\"" > "$private/args"
    /opt/kafka/bin/kafka-run-class.sh "@$private/args" --ignore-formatted \\
      --cluster-id "$(cat {CONTAINER_SECRETS}/kafka-cluster-id)" --config "$config"
  )
fi
exec /opt/kafka/bin/kafka-server-start.sh "$config"
"""


def kafka_service(n: int) -> dict[str, Any]:
    return {
        "image": f"apache/kafka:{KAFKA_VERSION}",
        "hostname": broker_host(n),
        "entrypoint": ["/bin/bash", "/etc/accord/kafka/start.sh"],
        "command": [f"/etc/accord/kafka/server-{n}.properties"],
        "volumes": ["./kafka:/etc/accord/kafka:ro", f"kafka-{n}-data:{CONTAINER_DATA}"],
        "secrets": [
            {"source": name, "target": name}
            for name in [
                "kafka-ca.pem",
                f"kafka-{n}.pem",
                "kafka-cluster-id",
                f"{_ADMIN}.properties",
                f"{_ADMIN}.librdkafka.conf",
            ]
        ],
        "ports": [f"{EXTERNAL_PORT + n - 1}:{EXTERNAL_PORT}"],
        "healthcheck": {
            "test": [
                "CMD",
                "/opt/kafka/bin/kafka-broker-api-versions.sh",
                "--bootstrap-server",
                f"{broker_host(n)}:{INTERNAL_PORT}",
                "--command-config",
                f"{CONTAINER_SECRETS}/{_ADMIN}.properties",
            ],
            "interval": "10s",
            "timeout": "20s",
            "retries": 30,
            "start_period": "30s",
        },
        "restart": "unless-stopped",
    }
