"""The Compose deployment's secrets: made once, beside the render, never in its YAML.

``accord deploy render --target compose`` makes what is missing in ``<out>/secrets`` (0700,
every file 0600) and never overwrites a file there, so a re-render keeps every password and
certificate; deleting a file and rendering again is how one is replaced (docs/deployment.md).
Beside it, ``<out>/desk-ports`` keeps the port each desk is published on (``ensure_desk_ports``):
a desk keeps its port when another is added or removed; ``<out>/gateway-ports`` the same for
the gateways.

- ``kafka-ca.pem`` / ``kafka-ca.key``: the brokers' CA (ten years). Only the certificate is
  mounted anywhere; keep the key offline once the brokers' certificates are made.
- ``kafka-<n>.pem``: broker ``n``'s key and certificate (two years), for its name in the
  Compose network, the external host, ``localhost`` and ``127.0.0.1``.
- ``kafka-cluster-id``: the KRaft cluster id (not secret, but fixed for the cluster's life).
- ``<principal>.properties`` / ``<principal>.librdkafka.conf``: each login's client files,
  random password: the same files ``accord kafka provision`` hands out. Parties' files name
  the external listener, the services' the internal one.
- ``keystore-passphrase-<principal>``: for the worker's, the console's and the indexer's
  keystores, and for each party whose desk or gateway the deployment runs (``--desk``,
  ``--gateway``); never for the governance keystore, which stays with the IG officer, off
  this host, under a passphrase of the officer's own;
- ``gateway-token-<party>``: each gateway's bearer token (``--gateway``), for the agency's
  records systems to send;
- ``postgres-password`` and ``audit-db-url`` (the same password, in a URL);
  ``grafana-admin-password``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

from broker.crypto import tls_ca, tls_hosts, tls_leaf
from broker.deploy._model import DESK_PORT, Deployment
from broker.devkafka import new_cluster_id
from broker.errors import UsageError
from broker.kafka import write_client_files
from broker.principals import Principal

__all__ = [
    "CONTAINER_SECRETS",
    "DESK_PORTS_FILE",
    "GATEWAY_PORTS_FILE",
    "KEYSTORE_PRINCIPALS",
    "broker_host",
    "desk_host_ports",
    "ensure_desk_ports",
    "ensure_secrets",
    "kept_ports",
]

#: Where Compose mounts a service's secrets.
CONTAINER_SECRETS = "/run/secrets"
#: Accord's processes that open a keystore (the indexer's holds public keys only: the
#: signed directory it checks checkpoints against).
KEYSTORE_PRINCIPALS = (str(Principal.WORKER), str(Principal.CONSOLE), str(Principal.INDEXER))
BROKER_CN = "kafka-broker"  # every broker's certificate subject: its principal on the controller


def broker_host(n: int) -> str:
    return f"kafka-{n}"


def _private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _check_made_for(directory: Path, external_host: str) -> None:
    """``UsageError`` if the broker certificates there are for another external host.

    The certificates and the parties' client files name the host they were made for, and
    are kept on a later render: a render for another host would advertise it while they
    still named the old one, and every agency's TLS hostname check would fail.
    """
    first = directory / "kafka-1.pem"
    if not first.is_file():
        return
    hosts = tls_hosts(first.read_bytes())
    always = {broker_host(1), "localhost", "127.0.0.1"}  # in every broker's certificate
    made_for = next((h for h in hosts if h not in always), None)
    if made_for is None:  # made for one of those: any of them is the same certificate
        made_for = external_host if external_host in hosts else "localhost or 127.0.0.1"
    if made_for != external_host:
        raise UsageError(
            f"{directory} holds certificates and client files made for --external-host "
            f"{made_for}, not {external_host}: render into a new --out folder (its secrets "
            "are new), or give the same host"
        )


def _password() -> str:
    return secrets.token_urlsafe(24)  # URL-safe: it goes into a database URL unescaped


def ensure_secrets(
    directory: Path,
    dep: Deployment,
    *,
    internal_bootstrap: str,
    external_bootstrap: str,
    external_host: str,
) -> list[str]:
    """Make every secret ``dep`` needs that ``directory`` lacks; return the names made."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    made: list[str] = []

    def need(name: str) -> bool:
        if (directory / name).exists():
            return False
        made.append(name)
        return True

    if need("kafka-ca.pem"):
        cert, key = tls_ca("Accord Kafka CA", days=3650)
        (directory / "kafka-ca.key").unlink(missing_ok=True)
        _private(directory / "kafka-ca.key", key)
        _private(directory / "kafka-ca.pem", cert)
    ca_cert = (directory / "kafka-ca.pem").read_bytes()
    _check_made_for(directory, external_host)
    for n in range(1, dep.brokers + 1):
        if need(f"kafka-{n}.pem"):
            ca_key = directory / "kafka-ca.key"
            if not ca_key.is_file():
                raise FileNotFoundError(f"{ca_key}: the CA key is needed to make a broker's cert")
            hosts = [broker_host(n), external_host, "localhost", "127.0.0.1"]
            cert, key = tls_leaf(ca_cert, ca_key.read_bytes(), BROKER_CN,
                                 hosts=list(dict.fromkeys(hosts)), days=730)  # fmt: skip
            _private(directory / f"kafka-{n}.pem", key + cert)
    if need("kafka-cluster-id"):
        _private(directory / "kafka-cluster-id", new_cluster_id().encode("ascii"))
    ca_path = Path(CONTAINER_SECRETS) / "kafka-ca.pem"
    # A desk logs in as its party, but the party's files are the party's to be handed (they
    # name the external listener; a desk's container is told the internal one).
    services = {str(Principal.ADMIN), *(p.principal for p in dep.processes if p.party is None)}
    for user in (str(Principal.ADMIN), *dep.users):
        if need(f"{user}.librdkafka.conf"):
            inside = user in services
            write_client_files(
                directory, user,
                bootstrap=internal_bootstrap if inside else external_bootstrap,
                password=_password(),
                # A party's files are handed over with kafka-ca.pem, to sit beside them.
                ca_file=ca_path if inside else Path("kafka-ca.pem"),
            )  # fmt: skip
    # Not the governance keystore's: the IG officer's key never lives on the platform host,
    # and no service here opens it.
    for principal in dict.fromkeys((*KEYSTORE_PRINCIPALS, *dep.desks, *dep.gateways)):
        if need(f"keystore-passphrase-{principal}"):
            _private(directory / f"keystore-passphrase-{principal}", _password().encode())
    for name in filter(need, (f"gateway-token-{party}" for party in dep.gateways)):
        # 43 characters of token_urlsafe: what docs/gateway.md tells anyone to make by hand.
        _private(directory / name, secrets.token_urlsafe(32).encode())
    if need("postgres-password"):
        password = _password()
        (directory / "audit-db-url").unlink(missing_ok=True)
        _private(directory / "postgres-password", password.encode())
        url = f"postgresql://accord:{password}@postgres:5432/accord"
        _private(directory / "audit-db-url", url.encode())
    if need("grafana-admin-password"):
        _private(directory / "grafana-admin-password", _password().encode())
    return made


#: The file beside the render that keeps each desk's port on the host, one ``party port`` a line.
DESK_PORTS_FILE = "desk-ports"
#: The same for each gateway's port.
GATEWAY_PORTS_FILE = "gateway-ports"


def desk_host_ports(
    desks: Iterable[str],
    kept: Mapping[str, int],
    reserved: Mapping[int, str] | None = None,
    *,
    first: int = DESK_PORT,
) -> dict[str, int]:
    """Each desk's port on the host: the one ``kept`` gives it, else the next port from
    ``first`` (8766) that no kept desk holds, in the order of the party ids. A desk
    removed from the deployment keeps its port in ``kept``, so no other desk takes it: one
    put back has the address its people's bookmarks and the proxy name.

    ``reserved``: the ports the render publishes for something else (port -> what), which no
    desk may hold (a one-line ``UsageError``) or be given. The gateways' ports are kept in the
    same way (``first``: ``GATEWAY_PORT``, in ``GATEWAY_PORTS_FILE``)."""
    reserved = reserved or {}
    file, what = (DESK_PORTS_FILE, "desk") if first == DESK_PORT else (GATEWAY_PORTS_FILE,
                                                                      "gateway")  # fmt: skip
    for party, port in sorted(kept.items()):
        if port in reserved:
            raise UsageError(
                f"{file}: {party} {port}: the render publishes {reserved[port]} "
                f"on that port; give the {what} another"
            )
    out = dict(kept)
    taken = set(out.values()) | set(reserved)
    port = first
    for party in sorted(set(desks) - set(out)):
        while port in taken:
            port += 1
        out[party] = port
        taken.add(port)
    return {party: out[party] for party in sorted(set(desks))}


def _read_ports(path: Path, what: str = "desk") -> dict[str, int]:
    kept: dict[str, int] = {}
    if not path.is_file():
        return kept
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match line.split():
            case [party, port] if port.isdigit() and 0 < int(port) < 65536:
                kept[party] = int(port)
            case _:
                raise UsageError(f"{path}, line {n}: not 'party port'")
    if len(set(kept.values())) != len(kept):
        raise UsageError(f"{path}: two {what}s share a port")
    return kept


def kept_ports(out: Path, what: str) -> dict[str, int]:
    """The host ports earlier renders kept in ``out`` for each ``desk`` or ``gateway``, those
    no longer rendered too."""
    return _read_ports(out / (DESK_PORTS_FILE if what == "desk" else GATEWAY_PORTS_FILE), what)


def ensure_desk_ports(
    out: Path,
    desks: Iterable[str],
    reserved: Mapping[int, str] | None = None,
    *,
    first: int = DESK_PORT,
) -> dict[str, int]:
    """The desks' host ports, kept in ``out/desk-ports``: read, and only added to (a desk
    named for the first time gets the next free port), never re-assigned; none of them one
    of ``reserved`` (``desk_host_ports``). ``first=GATEWAY_PORT``: the gateways', kept in
    ``out/gateway-ports``."""
    what = "desk" if first == DESK_PORT else "gateway"
    path = out / (DESK_PORTS_FILE if what == "desk" else GATEWAY_PORTS_FILE)
    kept = _read_ports(path, what)
    ports = desk_host_ports(desks, kept, reserved, first=first)
    added = {p: port for p, port in ports.items() if p not in kept}
    if added:
        out.mkdir(parents=True, exist_ok=True)
        lines = [
            f"# Each {what}'s port on the host, kept by `accord deploy render` across renders: a",
            f"# {what} keeps its port when others are added or removed. Edit only to move a "
            f"{what}.",
            *(f"{p} {port}" for p, port in sorted({**kept, **added}.items())),
        ]
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        tmp.replace(path)
    return ports
