"""What a deployment of a bundle consists of, whatever runs it: the one model both targets
render from.

Topics, logins and grants come from :func:`broker.provision.desired_access`, the function
``accord kafka provision`` applies to a running cluster: a Strimzi ``KafkaUser`` and a
provisioned login hold exactly the same grants because they are the same objects.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from broker import topics as topic_names
from broker.config import KafkaSettings
from broker.errors import UsageError
from broker.kafka import Grant, TopicSpec
from broker.policy import Policy, bundle_files
from broker.principals import Principal
from broker.provision import SERVICE_PRINCIPALS, desired_access, publishers

__all__ = [
    "CONSOLE_OPS_PORT",
    "CONSOLE_PORT",
    "DESK_OPS_PORT",
    "DESK_PORT",
    "FLAGS_OPS_PORT",
    "GATEWAY_OPS_PORT",
    "GATEWAY_PORT",
    "INDEXER_OPS_PORT",
    "WORKER_OPS_PORT",
    "Deployment",
    "Process",
    "Target",
    "deployment",
]

#: The ops servers' ports (``/metrics``, ``/livez``, ``/readyz``) inside every deployment.
WORKER_OPS_PORT = 9464
INDEXER_OPS_PORT = 9465
CONSOLE_OPS_PORT = 9466
#: The governance console's pages.
CONSOLE_PORT = 8765
#: A recipient's desk: its pages, and its ops server.
DESK_PORT = 8766
DESK_OPS_PORT = 9467
#: A co-ordinating team's flag service (``accord desk flags``): its ops server only.
FLAGS_OPS_PORT = 9468
#: An agency's HTTP publishing gateway (``accord gateway``, docs/gateway.md): its token-guarded
#: port, and its ops server.
GATEWAY_PORT = 8780
GATEWAY_OPS_PORT = 9469

# Kubernetes object names (RFC 1123 labels) and Compose service names: party ids already
# are, but a render must say so rather than emit a manifest the API server refuses.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class Target(enum.StrEnum):
    COMPOSE = "compose"
    KUBERNETES = "kubernetes"


@dataclass(frozen=True)
class Process:
    """One of Accord's long-running processes: its name (service, Deployment and Kafka
    login), the command it runs, and its ops port."""

    name: str
    principal: str
    args: tuple[str, ...]
    ops_port: int
    web_port: int | None = None
    #: The settings section of its ``ACCORD_<SECTION>__…`` variables (default: its name).
    section: str = ""
    #: A recipient's desk or flag service: it runs as this party, with the party's own
    #: keystore and Kafka login, not as one of Accord's service principals.
    party: str | None = None

    @property
    def settings_section(self) -> str:
        return (self.section or self.name).upper()

    @property
    def is_gateway(self) -> bool:
        """An agency's publishing gateway: it runs as its party, as a desk does, but loads
        no bundle, keeps nothing and serves no browser."""
        return self.section == "gateway"


PROCESSES = (
    Process("worker", str(Principal.WORKER), ("worker", "--policies", "/etc/accord/policies"),
            WORKER_OPS_PORT),
    Process("indexer", str(Principal.INDEXER), ("audit", "index", "--follow"), INDEXER_OPS_PORT),
    Process("console", str(Principal.CONSOLE),
            ("console", "--policies", "/etc/accord/policies", "--no-index"),
            CONSOLE_OPS_PORT, CONSOLE_PORT),
)  # fmt: skip


@dataclass(frozen=True)
class Deployment:
    """Everything a target needs to know about one partnership's deployment."""

    bundle_version: str
    #: Every Kafka topic, with partitions and the retention/compaction the worker expects.
    topics: tuple[TopicSpec, ...]
    #: Every Kafka login but ``admin``: each party of the bundle and the service principals.
    users: tuple[str, ...]
    #: Exactly the grants ``accord kafka provision`` applies, sorted.
    grants: tuple[Grant, ...]
    brokers: int
    replication: int
    min_insync: int
    image: str
    #: The bundle's files (relative path, text), scenarios left out: what the worker and
    #: the console load, shipped with the deployment so it runs the bundle it was made from.
    policy_files: tuple[tuple[str, str], ...] = ()
    processes: tuple[Process, ...] = PROCESSES
    #: The recipients whose desks this deployment runs (``--desk``), sorted.
    desks: tuple[str, ...] = ()
    #: The agencies whose publishing gateways this deployment runs (``--gateway``), sorted.
    gateways: tuple[str, ...] = ()

    def grants_of(self, user: str) -> tuple[Grant, ...]:
        return tuple(g for g in self.grants if g.principal == user)

    @property
    def partitions(self) -> int:
        """``--partitions``: the count every topic but quarantine has, ``accord.audit``'s."""
        return next(t.partitions for t in self.topics if t.name == topic_names.AUDIT)

    def kept(self) -> dict[str, str]:
        """What every later render into the same folder must keep (``_files.KEPT``)."""
        return {"partitions": str(self.partitions)}

    @property
    def parties(self) -> tuple[str, ...]:
        return tuple(u for u in self.users if u not in SERVICE_PRINCIPALS)

    @property
    def desk_processes(self) -> tuple[Process, ...]:
        """The desks' and flag services' processes, as :attr:`processes` lists them."""
        return tuple(p for p in self.processes if p.party is not None and not p.is_gateway)

    @property
    def gateway_processes(self) -> tuple[Process, ...]:
        """The agencies' publishing gateways, as :attr:`processes` lists them."""
        return tuple(p for p in self.processes if p.is_gateway)


def desk_processes(policy: Policy, parties: Sequence[str]) -> tuple[Process, ...]:
    """Each named recipient's desk, and a co-ordinating team's flag service when the bundle
    has flag rules; a party the bundle does not know, an agency or a suspended party is a
    one-line ``UsageError``, as ``accord desk --as`` refuses them."""
    out: list[Process] = []
    for party in sorted(set(parties)):
        kind = policy.bundle.desk_kind(party, option="--desk")
        name = f"desk-{party}"
        if not _NAME.match(f"flags-{party}"):  # the longer of its two names
            raise UsageError(
                f"--desk {party}: 'flags-{party}' cannot name a container (lower-case "
                "letters, digits and '-', at most 63)"
            )
        out.append(
            Process(name, party, ("desk", "--as", party), DESK_OPS_PORT, DESK_PORT,
                    section="desk", party=party)
        )  # fmt: skip
        if kind == "coordinating_team" and policy.flag_rules:
            out.append(
                Process(f"flags-{party}", party, ("desk", "flags", "--as", party),
                        FLAGS_OPS_PORT, section="desk", party=party)
            )  # fmt: skip
    return tuple(out)


def gateway_processes(policy: Policy, parties: Sequence[str]) -> tuple[Process, ...]:
    """Each named publisher's gateway (an agency's, or a party's a clause sends from: those
    ``accord kafka provision`` lets write their ingress topic); a party the bundle does not
    know, one that publishes nothing or a suspended one is a one-line ``UsageError``."""
    out: list[Process] = []
    senders = set(publishers(policy))
    for party in sorted(set(parties)):
        found = policy.bundle.parties.get(party)
        if found is None:
            raise UsageError(f"--gateway {party}: no such party in the policy bundle")
        if party not in senders:
            raise UsageError(
                f"--gateway {party}: a gateway publishes a party's contact events, and "
                f"{party} publishes none (not an agency, and no clause sends from it)"
            )
        if found.status != "active":
            raise UsageError(f"--gateway {party}: the party is suspended")
        name = f"gateway-{party}"
        if not _NAME.match(name):
            raise UsageError(
                f"--gateway {party}: '{name}' cannot name a container (lower-case letters, "
                "digits and '-', at most 63)"
            )
        out.append(
            Process(name, party, ("gateway", "--as", party), GATEWAY_OPS_PORT, GATEWAY_PORT,
                    section="gateway", party=party)
        )  # fmt: skip
    return tuple(out)


def deployment(
    policy: Policy,
    bundle_dir: Path,
    *,
    brokers: int,
    partitions: int,
    image: str,
    desks: Sequence[str] = (),
    gateways: Sequence[str] = (),
) -> Deployment:
    """The deployment of ``policy`` on ``brokers`` Kafka brokers (1 for a trial, 3 or more
    for production: every topic then has 3 replicas and needs 2 in sync to accept a write),
    with the desks of the recipients named in ``desks`` and the publishing gateways of the
    agencies named in ``gateways``."""
    if brokers < 1:
        raise UsageError("--brokers: at least 1")
    if partitions < 1:
        raise UsageError("--partitions: at least 1")
    replication = min(brokers, 3)
    kafka = KafkaSettings(partitions=partitions, replication_factor=replication)
    desired = desired_access(policy, kafka, logins=True)
    users = tuple(sorted(desired.users))
    for user in users:
        if not _NAME.match(user):
            raise UsageError(
                f"party id {user!r} cannot name a Kafka user or a container: use lower-case "
                "letters, digits and '-' (at most 63)"
            )
    extra = (*desk_processes(policy, desks), *gateway_processes(policy, gateways))
    return Deployment(
        bundle_version=policy.bundle.version(),
        topics=tuple(sorted(desired.topics, key=lambda t: t.name)),
        users=users,
        grants=tuple(sorted(desired.grants)),
        brokers=brokers,
        replication=replication,
        min_insync=2 if replication >= 3 else 1,
        image=image,
        policy_files=_policy_files(bundle_dir),
        processes=(*PROCESSES, *extra),
        desks=tuple(sorted(set(desks))),
        gateways=tuple(sorted(set(gateways))),
    )


def _policy_files(bundle_dir: Path) -> tuple[tuple[str, str], ...]:
    # The loader's own list: a bundle file spelt .yml ships too, and nothing it never reads
    # (scenarios, anything under .git) does.
    return tuple(
        (path.relative_to(bundle_dir).as_posix(), path.read_text(encoding="utf-8"))
        for path in bundle_files(bundle_dir)
    )
