"""The Compose target: Apache Kafka (KRaft, the official ``apache/kafka`` image), Accord's
processes, PostgreSQL for the audit index, Prometheus and Grafana, on one host.

Kafka is secured as the embedded broker is (docs/operations.md, "Securing a deployment"):
TLS everywhere, SCRAM-SHA-512 logins, the StandardAuthorizer denying what no ACL allows,
only ``admin`` a super user, the controller listener mutual TLS. Services reach the
brokers on the internal listener (``kafka-<n>:9092``); agencies and recipients on the
external one (``<external-host>:9094+``), published on the host. Every password is a file
under ``secrets/`` mounted into the one service that needs it (``_secrets``); the YAML and the
broker configuration name files, never values (``${file:…}`` is Kafka's own
FileConfigProvider). A one-shot ``provision`` service runs ``accord kafka provision`` as the
admin before Accord's processes start, so topics, logins and ACLs are the bundle's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from broker.deploy._compose_gateways import gateway_host_ports, gateway_settings
from broker.deploy._compose_kafka import (
    _START_SH,
    CONTAINER_DATA,
    EXTERNAL_PORT,
    external_bootstrap,
    internal_bootstrap,
    kafka_service,
    server_properties,
)
from broker.deploy._model import CONSOLE_PORT, DESK_PORT, GATEWAY_PORT, Deployment, Process
from broker.deploy._proxies import PRIVATE_RANGES
from broker.deploy._resources import COMPOSE_ONLY, broker_deploy, compose_deploy, resources_of
from broker.deploy._secrets import (
    CONTAINER_SECRETS,
    KEYSTORE_PRINCIPALS,
    broker_host,
    desk_host_ports,
)
from broker.principals import Principal

__all__ = [
    "BUNDLE_LABEL",
    "CONTAINER_DATA",
    "EXTERNAL_PORT",
    "compose_files",
    "external_bootstrap",
    "internal_bootstrap",
    "published_ports",
    "server_properties",
]

#: Who each image runs as (uid, gid): what the secrets' owners must be on a Linux host,
#: where Compose bind-mounts a secret with the host file's owner and mode.
IMAGE_USERS = {"accord": (10001, 10001), "kafka": (1000, 1000), "postgres": (0, 0),
               "grafana": (472, 0)}  # fmt: skip
#: Published on the host's loopback: Prometheus' and Grafana's pages.
PROMETHEUS_PORT = 9090
GRAFANA_PORT = 3000
POSTGRES_IMAGE = "postgres:17"
PROMETHEUS_IMAGE = "prom/prometheus:v3.5.0"
GRAFANA_IMAGE = "grafana/grafana-oss:12.1.1"
_ADMIN = str(Principal.ADMIN)


def published_ports(dep: Deployment) -> dict[int, str]:
    """Every host port the render publishes but the desks' (port -> what): no desk's may be
    one of them, or Compose would fail to start one of the two, or start it elsewhere."""
    ports = {CONSOLE_PORT: "the console", PROMETHEUS_PORT: "Prometheus", GRAFANA_PORT: "Grafana"}
    for n in range(1, dep.brokers + 1):
        ports[EXTERNAL_PORT + n - 1] = f"Kafka broker {n}'s external listener"
    return ports


def _secret_refs(names: list[str]) -> list[dict[str, str]]:
    return [{"source": name, "target": name} for name in names]


def _accord_env(dep: Deployment) -> dict[str, str]:
    return {
        "ACCORD_HOME": "/var/lib/accord",
        "ACCORD_KAFKA__CREDENTIALS_DIR": CONTAINER_SECRETS,
        "ACCORD_KAFKA__PARTITIONS": str(dep.partitions),
        "ACCORD_KAFKA__REPLICATION_FACTOR": str(dep.replication),
        "ACCORD_POLICIES": "/etc/accord/policies",
    }


def _accord_base(dep: Deployment) -> dict[str, Any]:
    return {
        "image": dep.image,
        "read_only": True,
        "tmpfs": ["/tmp"],  # noqa: S108  # the container's own private /tmp
        "security_opt": ["no-new-privileges:true"],
        "cap_drop": ["ALL"],
    }


def _keystore(env: dict[str, str], secrets: list[str], volumes: list[str], owner: str) -> None:
    """``owner``'s keystore (made by the key ceremony, docs/deployment.md, outside Compose)
    and its passphrase."""
    env["ACCORD_KEYSTORE__PATH"] = "/var/lib/accord/keys"
    env["ACCORD_KEYSTORE__PASSPHRASE_FILE"] = f"{CONTAINER_SECRETS}/keystore-passphrase-{owner}"
    secrets.append(f"keystore-passphrase-{owner}")
    volumes.append(f"${{ACCORD_KEYS_DIR:-./keys}}/{owner}:/var/lib/accord/keys")


def _web(
    env: dict[str, str], section: str, port: int, *, users_file: str | None, external_host: str
) -> None:
    env[f"ACCORD_{section}__HOST"] = "0.0.0.0"  # noqa: S104  # published on the host's loopback only
    env[f"ACCORD_{section}__PORT"] = str(port)
    if users_file is not None:
        env[f"ACCORD_{section}__USERS_FILE"] = users_file
    # The host's reverse proxy (published on the host's loopback only) reaches the container
    # through Docker's gateway, whose address Docker picks: trusted as every private range
    # (_proxies), the address it appends to X-Forwarded-For is the client, or all are
    # one to the sign-in throttle. It serves HTTPS: Secure cookies (forwarded hops imply it).
    env[f"ACCORD_{section}__FORWARDED_HOPS"] = "1"
    env[f"ACCORD_{section}__TRUSTED_PROXIES"] = PRIVATE_RANGES
    # Bound to every address of the container, plain HTTP: TLS is the host proxy's, or the
    # app refuses to start (passwords and codes would cross the network in clear).
    env[f"ACCORD_{section}__TLS_TERMINATED_BY_PROXY"] = "true"
    # The names a request may carry in Host (DNS rebinding): the host's own external name,
    # and loopback names always (what a proxy sends to 127.0.0.1:<port> by default). A proxy
    # that passes another public name needs it added (docs/deployment.md).
    env[f"ACCORD_{section}__ALLOWED_HOSTS"] = external_host


#: On each service that reads the bundle only when it starts (the console, the desks, the flag
#: services): a new bundle changes the service's configuration, so ``docker compose up -d``
#: recreates it. The worker reloads on SIGHUP instead (docs/operations.md, "Policy reload").
BUNDLE_LABEL = "accord.bundle-version"


def _reads_bundle_at_start(proc: Process) -> bool:
    if proc.is_gateway:  # it validates as the SDK does, whatever the bundle
        return False
    return proc.name != "worker" and ("--policies" in proc.args or proc.party is not None)


def _process_service(
    dep: Deployment, proc: Process, *, host_port: int | None, external_host: str
) -> dict[str, Any]:
    section = proc.settings_section
    env = {
        **_accord_env(dep),
        f"ACCORD_{section}__METRICS_HOST": "0.0.0.0",  # noqa: S104  # Prometheus is another container
        f"ACCORD_{section}__METRICS_PORT": str(proc.ops_port),
        # Prometheus scrapes <service>:<port> (prometheus.yml); the ops server answers no
        # name it is not given (DNS rebinding), this one included.
        f"ACCORD_{section}__METRICS_ALLOWED_HOSTS": proc.name,
    }
    secrets = ["kafka-ca.pem", f"{proc.principal}.librdkafka.conf"]
    # ACCORD_HOME: a named volume, outliving the container (a desk's users and store, a flag
    # service's saved keep of withdrawals).
    volumes = [f"{proc.name}-home:/var/lib/accord"]
    if not proc.is_gateway:  # the gateway loads no bundle
        volumes.insert(0, "./policies:/etc/accord/policies:ro")
    if proc.party is not None:
        # A desk or a gateway runs as its party, with the party's own keystore and login.
        # The party's client file names the external listener (it is the one handed to the
        # party), which is not reachable as such from inside the Compose network: the
        # setting overrides the file's address (broker.kafka.client_settings).
        env["ACCORD_KAFKA__BOOTSTRAP"] = internal_bootstrap(dep)
        _keystore(env, secrets, volumes, proc.party)
        if proc.is_gateway:
            gateway_settings(env, secrets, proc.party)
    elif proc.principal in KEYSTORE_PRINCIPALS:
        _keystore(env, secrets, volumes, proc.principal)
    audited = proc.party is None and proc.name != "worker"  # the audit index's readers
    if audited:
        env["ACCORD_AUDIT__DB_FILE"] = f"{CONTAINER_SECRETS}/audit-db-url"
        secrets.append("audit-db-url")
    depends: dict[str, Any] = {"provision": {"condition": "service_completed_successfully"}}
    if audited:
        depends["postgres"] = {"condition": "service_healthy"}
    service: dict[str, Any] = {
        **_accord_base(dep),
        "command": list(proc.args),
        "environment": env,
        "volumes": volumes,
        "secrets": _secret_refs(secrets),
        "depends_on": depends,
        "healthcheck": {
            "test": [
                "CMD",
                "python",
                "-c",
                "import urllib.request; urllib.request.urlopen("
                f"'http://127.0.0.1:{proc.ops_port}/readyz', timeout=3)",
            ],
            "interval": "15s",
            "timeout": "5s",
            "retries": 4,
            "start_period": "60s",
        },
        "restart": "unless-stopped",
        # The limits its pod has on Kubernetes: one process cannot starve the host's others.
        "deploy": compose_deploy(resources_of(proc)["limits"]),
        # The worker commits its transaction and copies its offsets on SIGTERM.
        "stop_grace_period": "30s",
    }
    if _reads_bundle_at_start(proc):
        service["labels"] = {BUNDLE_LABEL: dep.bundle_version}
    if proc.web_port and proc.party is None:  # the console
        _web(env, section, CONSOLE_PORT, users_file="/var/lib/accord/console/users.json",
             external_host=external_host)  # fmt: skip
        service["ports"] = [f"127.0.0.1:{CONSOLE_PORT}:{CONSOLE_PORT}"]
    elif proc.web_port:  # a gateway; a desk (its users file: <home>/desk/<party>/users.json)
        port = GATEWAY_PORT if proc.is_gateway else DESK_PORT
        _web(env, section, port, users_file=None, external_host=external_host)
        service["ports"] = [f"127.0.0.1:{host_port or port}:{port}"]
    return service


def _provision_service(dep: Deployment) -> dict[str, Any]:
    logins = [f"{u}.librdkafka.conf" for u in (_ADMIN, *dep.users)]
    return {
        **_accord_base(dep),
        "command": [
            "kafka",
            "provision",
            "--policies",
            "/etc/accord/policies",
            "--passwords-from",
            CONTAINER_SECRETS,
            # The secrets are mounted read-only; client files of logins made without a
            # rendered password (none, normally) land in the container's private /tmp.
            "--out",
            "/tmp/clients",  # noqa: S108  # the container's own tmpfs
        ],
        "environment": _accord_env(dep),
        "volumes": ["./policies:/etc/accord/policies:ro"],
        "secrets": _secret_refs(["kafka-ca.pem", *logins]),
        "depends_on": {
            broker_host(n): {"condition": "service_healthy"} for n in range(1, dep.brokers + 1)
        },
        "restart": "no",
        "deploy": compose_deploy(COMPOSE_ONLY["provision"]),
    }


def compose_document(
    dep: Deployment,
    *,
    desk_ports: Mapping[str, int] | None = None,
    gateway_ports: Mapping[str, int] | None = None,
    external_host: str = "localhost",
) -> dict[str, Any]:
    """The Compose file; ``desk_ports``: each desk's port on the host (default: 8766 on,
    in the order of the party ids; ``render_files`` keeps them in ``desk-ports``);
    ``gateway_ports``: each gateway's (default: 8780 on; kept in ``gateway-ports``);
    ``external_host``: the host's name, which the console, the desks and the gateways answer
    to."""
    ports = desk_host_ports(dep.desks, desk_ports or {}, published_ports(dep))
    taken = {**published_ports(dep), **{port: f"{p}'s desk" for p, port in ports.items()}}
    gateways = gateway_host_ports(dep.gateways, gateway_ports or {}, taken)
    services: dict[str, Any] = {
        broker_host(n): {**kafka_service(n), "deploy": broker_deploy()}
        for n in range(1, dep.brokers + 1)
    }
    services["provision"] = _provision_service(dep)
    for proc in dep.processes:
        host_ports = gateways if proc.is_gateway else ports
        services[proc.name] = _process_service(
            dep, proc, host_port=host_ports.get(proc.party) if proc.party else None,
            external_host=external_host,
        )  # fmt: skip
    services["postgres"] = {
        "image": POSTGRES_IMAGE,
        "environment": {
            "POSTGRES_USER": "accord",
            "POSTGRES_DB": "accord",
            "POSTGRES_PASSWORD_FILE": f"{CONTAINER_SECRETS}/postgres-password",
        },
        "secrets": _secret_refs(["postgres-password"]),
        "volumes": ["postgres-data:/var/lib/postgresql/data"],
        "healthcheck": {
            "test": ["CMD", "pg_isready", "-U", "accord", "-d", "accord"],
            "interval": "10s",
            "timeout": "5s",
            "retries": 10,
        },
        "restart": "unless-stopped",
    }
    services["prometheus"] = {
        "image": PROMETHEUS_IMAGE,
        "volumes": ["./prometheus:/etc/prometheus:ro", "prometheus-data:/prometheus"],
        "ports": [f"127.0.0.1:{PROMETHEUS_PORT}:{PROMETHEUS_PORT}"],
        "restart": "unless-stopped",
    }
    services["grafana"] = {
        "image": GRAFANA_IMAGE,
        "environment": {
            "GF_SECURITY_ADMIN_PASSWORD__FILE": f"{CONTAINER_SECRETS}/grafana-admin-password",
            "GF_USERS_ALLOW_SIGN_UP": "false",
            "GF_AUTH_ANONYMOUS_ENABLED": "false",
        },
        "secrets": _secret_refs(["grafana-admin-password"]),
        "volumes": [
            "./grafana/provisioning:/etc/grafana/provisioning:ro",
            "./grafana/dashboards:/var/lib/grafana/dashboards:ro",
            "grafana-data:/var/lib/grafana",
        ],
        "ports": [f"127.0.0.1:{GRAFANA_PORT}:{GRAFANA_PORT}"],
        "depends_on": ["prometheus"],
        "restart": "unless-stopped",
    }
    for name in ("postgres", "prometheus", "grafana"):
        services[name]["deploy"] = compose_deploy(COMPOSE_ONLY[name])
    used = sorted({s["source"] for svc in services.values() for s in svc.get("secrets", ())})
    volumes = [f"kafka-{n}-data" for n in range(1, dep.brokers + 1)]
    volumes += [f"{p.name}-home" for p in dep.processes]
    volumes += ["postgres-data", "prometheus-data", "grafana-data"]
    return {
        "name": "accord",
        "services": services,
        "volumes": {v: {} for v in volumes},
        "secrets": {name: {"file": f"./secrets/{name}"} for name in used},
    }


def compose_files(
    dep: Deployment,
    *,
    external_host: str,
    desk_ports: Mapping[str, int] | None = None,
    gateway_ports: Mapping[str, int] | None = None,
) -> dict[str, str]:
    """Every file of the Compose deployment but its secrets (relative path -> text)."""
    head = (
        f"# Rendered by `accord deploy render --target compose` for bundle "
        f"{dep.bundle_version}.\n# Re-render after a bundle change; do not edit.\n"
    )
    doc = compose_document(dep, desk_ports=desk_ports, gateway_ports=gateway_ports,
                           external_host=external_host)  # fmt: skip
    files = {
        "compose.yaml": head + yaml.safe_dump(doc, sort_keys=False, width=100),
        "kafka/start.sh": _START_SH,
    }
    for n in range(1, dep.brokers + 1):
        files[f"kafka/server-{n}.properties"] = server_properties(
            dep, n, external_host=external_host
        )
    files["secret-owners.sh"] = _owners_script(doc)
    for rel, text in dep.policy_files:
        files[f"policies/{rel}"] = text
    return files


def _image_user(service: dict[str, Any]) -> tuple[int, int]:
    image = str(service["image"])
    for key in ("kafka", "postgres", "grafana"):
        if key in image.split(":", maxsplit=1)[0]:
            return IMAGE_USERS[key]
    return IMAGE_USERS["accord"]


def secret_readers(doc: dict[str, Any]) -> dict[str, set[tuple[int, int]]]:
    """Each secret file's readers, as the (uid, gid) their containers run as."""
    readers: dict[str, set[tuple[int, int]]] = {}
    for service in doc["services"].values():
        for ref in service.get("secrets", ()):
            readers.setdefault(ref["source"], set()).add(_image_user(service))
    return readers


# Public material: a certificate and an identifier, readable by anyone.
_PUBLIC = frozenset({"kafka-ca.pem", "kafka-cluster-id"})


def _owners_script(doc: dict[str, Any]) -> str:
    """A script giving each secret to the user its container reads it as: one reader owns
    it (0400); a second reader's group may read it too (0440). Root on the host runs it."""
    lines = [
        "#!/bin/sh",
        "# Rendered by `accord deploy render`: run as root after each render, from this folder.",
        "set -eu",
        "cd secrets",
    ]
    for name, users in sorted(secret_readers(doc).items()):
        if name in _PUBLIC:
            lines.append(f"chmod 0444 {name}")
            continue
        (uid, gid), *others = sorted(users)
        if others:
            gid = others[0][1]
        lines.append(f"chown {uid}:{gid} {name} && chmod {'0440' if others else '0400'} {name}")
    return "\n".join(lines) + "\n"
