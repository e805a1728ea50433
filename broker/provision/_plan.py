"""What a policy bundle needs from Kafka, and what to change to get there.

Least privilege, derived from ``parties.yaml`` and the agreements (docs/operations.md,
"Securing a deployment", has the same table for readers):

- a party that publishes (an agency, or any party a clause sends from): Write its own
  ``accord.ingress.<party>``; a party that may record consent (``consent-authorities.yaml``,
  else the co-ordinating team): Write ``accord.consent``;
- a recipient (any party that is not an agency): Read its own ``accord.deliver.<party>``,
  consumer groups named ``<party>.*``, and Write ``accord.access`` (its acknowledgements);
  Write transactional ids ``accord.desk.<party>.*`` (its desk web app's transactions);
- a co-ordinating team, for its flag service (a faust-streaming app; no hub or school runs
  one): everything named ``accord.desk.<party>.*``: Read and Write topics, Read consumer
  groups, and DescribeConfigs on its delivery topic and desk topics (the flag service reads
  their retention at start, to know how long to keep withdrawal markers:
  broker.desk._withdrawn_keep). Its flag service topics are created here (faust is told not
  to create topics): the flags topic
  ``accord.desk.<party>.flags`` (plain retention, a year), its window table's compacted
  changelog and its records-by-child topic;
- ``worker``: Read every ingress topic, ``accord.consent`` and ``accord.access``; Write every
  delivery topic, ``accord.audit`` and ``accord.quarantine``; Read and Write its state topic;
  its group ``accord-worker`` and transactional id ``accord-worker``;
- ``indexer``: Read ``accord.audit``; ``console``: Read and Write ``accord.audit`` and the
  transactional ids of console chains;
- only the ``admin`` super user may create, delete or alter topics or ACLs.

A suspended party keeps its login but holds no grant; a party gone from the bundle loses its
login and its grants at the next provision.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from broker import topics
from broker.config import KafkaSettings
from broker.kafka import (
    ClusterAccess,
    Grant,
    Operation,
    ResourceKind,
    TopicSpec,
    accord_topics,
)
from broker.policy import Policy
from broker.principals import Principal

__all__ = [
    "SERVICE_PRINCIPALS",
    "WORKER_GROUP",
    "WORKER_TRANSACTIONAL_ID",
    "Desired",
    "Plan",
    "desired_access",
    "plan_changes",
    "publishers",
    "recipients",
]

#: Kafka logins besides the parties: the worker, the audit indexer and the console.
SERVICE_PRINCIPALS = (str(Principal.WORKER), str(Principal.INDEXER), str(Principal.CONSOLE))
WORKER_GROUP = "accord-worker"
WORKER_TRANSACTIONAL_ID = "accord-worker"
CONSOLE_TRANSACTIONAL_IDS = f"accord-audit-{Principal.CONSOLE.chain('')}"

_T, _G, _X = ResourceKind.TOPIC, ResourceKind.GROUP, ResourceKind.TRANSACTIONAL_ID
_R, _W, _D = Operation.READ, Operation.WRITE, Operation.DESCRIBE_CONFIGS
_DAY_MS = 24 * 3600 * 1000
#: Kept a year: flags are work items the desk reads into its own store.
FLAGS_RETENTION_MS = 365 * _DAY_MS


def publishers(policy: Policy) -> list[str]:
    """Parties that publish contact events: agencies, and any party a clause sends from."""
    parties = policy.bundle.parties
    senders = {p for p, party in parties.items() if party.kind == "agency"}
    senders |= {s for a in policy.bundle.agreements for c in a.clauses for s in c.from_}
    return sorted(senders & set(parties))


def recipients(policy: Policy) -> list[str]:
    """Parties that receive deliveries: every party that is not an agency."""
    return sorted(p for p, party in policy.bundle.parties.items() if party.kind != "agency")


def _teams(policy: Policy) -> set[str]:
    """The co-ordinating teams: the only parties whose desk runs a flag service."""
    return {p for p, party in policy.bundle.parties.items() if party.kind == "coordinating_team"}


def _flag_service(p: str, desk: str) -> Iterator[Grant]:
    """What a co-ordinating team's flag service needs: a hub's or a school's desk runs none,
    so they hold none of it (least privilege)."""
    yield Grant(p, _T, desk, _R, prefixed=True)
    yield Grant(p, _T, desk, _W, prefixed=True)
    yield Grant(p, _G, desk, _R, prefixed=True)
    # It reads these topics' retention (broker.desk._withdrawn_keep).
    yield Grant(p, _T, topics.deliver(p), _D)
    yield Grant(p, _T, desk, _D, prefixed=True)


def _grants(policy: Policy) -> Iterator[Grant]:
    active = {p for p, party in policy.bundle.parties.items() if party.status == "active"}
    teams = _teams(policy)
    for p in publishers(policy):
        if p in active:
            yield Grant(p, _T, topics.ingress(p), _W)
    for p in policy.bundle.consent_recorders():
        yield Grant(p, _T, topics.CONSENT, _W)
    for p in recipients(policy):
        if p in active:
            yield Grant(p, _T, topics.deliver(p), _R)
            yield Grant(p, _G, f"{p}.", _R, prefixed=True)
            yield Grant(p, _T, topics.ACCESS, _W)
            desk = topics.desk_prefix(p)
            # Every recipient's desk web app sends its acknowledgements (and a co-ordinating
            # team's desk its events) in transactions with ids of its own under the prefix
            # (broker.desk._serve).
            yield Grant(p, _X, desk, _W, prefixed=True)
            if p in teams:
                yield from _flag_service(p, desk)
    worker = str(Principal.WORKER)
    yield Grant(worker, _T, topics.INGRESS_PREFIX, _R, prefixed=True)
    yield Grant(worker, _T, topics.CONSENT, _R)
    yield Grant(worker, _T, topics.ACCESS, _R)
    yield Grant(worker, _T, topics.DELIVER_PREFIX, _W, prefixed=True)
    for name in (topics.AUDIT, topics.QUARANTINE, topics.STATE):
        yield Grant(worker, _T, name, _W)
    yield Grant(worker, _T, topics.STATE, _R)
    yield Grant(worker, _G, WORKER_GROUP, _R)
    # One transactional id per input partition (broker.pipeline._tasks): a prefix.
    yield Grant(worker, _X, f"{WORKER_TRANSACTIONAL_ID}.", _W, prefixed=True)
    yield Grant(Principal.INDEXER, _T, topics.AUDIT, _R)
    # For `accord audit quarantine`: the copies are sealed to governance, so reading them
    # shows where each came from, never what it held; no new login for an on-call engineer.
    yield Grant(Principal.INDEXER, _T, topics.QUARANTINE, _R)
    console = str(Principal.CONSOLE)
    yield Grant(console, _T, topics.AUDIT, _R)
    yield Grant(console, _T, topics.AUDIT, _W)
    yield Grant(console, _X, CONSOLE_TRANSACTIONAL_IDS, _W, prefixed=True)


def _desk_topics(policy: Policy, kafka: KafkaSettings) -> list[TopicSpec]:
    """The flag service's topics for each co-ordinating team (whose desk raises flags)."""
    teams = sorted(_teams(policy))
    n = kafka.partitions
    out: list[TopicSpec] = []
    for p in sorted(teams):
        changelog, bychild, households, byhousehold = topics.desk_flags_internal(p)
        out += [
            TopicSpec(topics.desk_flags(p), n,
                      {"cleanup.policy": "delete", "retention.ms": str(FLAGS_RETENTION_MS)}),
            # Co-partitioned: a child's records and its window state share a partition,
            # as do a household's.
            TopicSpec(changelog, n, {"cleanup.policy": "compact"}),
            TopicSpec(bychild, n, {"retention.ms": str(7 * _DAY_MS)}),
            TopicSpec(households, n, {"cleanup.policy": "compact"}),
            TopicSpec(byhousehold, n, {"retention.ms": str(7 * _DAY_MS)}),
        ]  # fmt: skip
    return out


@dataclass(frozen=True)
class Desired:
    topics: tuple[TopicSpec, ...]
    users: frozenset[str]
    grants: frozenset[Grant]


def desired_access(policy: Policy, kafka: KafkaSettings, *, logins: bool = True) -> Desired:
    """Every topic, login and grant the bundle's deployment needs (topics only, without
    ``logins``: a PLAINTEXT cluster has neither logins nor ACLs)."""
    specs = (
        *accord_topics(publishers(policy), recipients(policy), kafka),
        *_desk_topics(policy, kafka),
    )
    if not logins:
        return Desired(specs, frozenset(), frozenset())
    users = frozenset(policy.bundle.parties) | frozenset(SERVICE_PRINCIPALS)
    return Desired(specs, users, frozenset(_grants(policy)))


@dataclass(frozen=True)
class Plan:
    """What provisioning adds and removes, in the order it does it."""

    create_topics: tuple[TopicSpec, ...] = ()
    add_users: tuple[str, ...] = ()
    remove_users: tuple[str, ...] = ()
    add_grants: tuple[Grant, ...] = ()
    remove_grants: tuple[Grant, ...] = ()

    def __bool__(self) -> bool:
        return bool(
            self.create_topics
            or self.add_users
            or self.remove_users
            or self.add_grants
            or self.remove_grants
        )

    def rows(self) -> list[tuple[str, str, str, str, str]]:
        """(action, what, principal, resource, operation), for a table."""
        out = [("add", "topic", "", t.name, "") for t in self.create_topics]
        out += [("add", "login", u, "", "SCRAM-SHA-512") for u in self.add_users]
        out += [("remove", "login", u, "", "") for u in self.remove_users]
        out += [("remove", "acl", g.principal, g.describe(), g.operation)
                for g in self.remove_grants]  # fmt: skip
        out += [("add", "acl", g.principal, g.describe(), g.operation) for g in self.add_grants]
        return out


def plan_changes(
    desired: Desired,
    current: ClusterAccess,
    *,
    rotate: frozenset[str],
    acting_as: str | None = None,
) -> Plan:
    """From the cluster as it is to the bundle's needs; ``rotate`` gets new passwords.

    Every SCRAM login the bundle does not name goes, except ``admin`` and ``acting_as``, the
    login provisioning runs as (a super user named otherwise would delete itself).
    """
    users = desired.users
    keep = {str(Principal.ADMIN), *([acting_as] if acting_as else [])}
    return Plan(
        create_topics=tuple(t for t in desired.topics if t.name not in current.topics),
        add_users=tuple(sorted((users - current.users) | (rotate & users))),
        remove_users=tuple(sorted(current.users - users - keep)),
        add_grants=tuple(sorted(desired.grants - current.grants)),
        remove_grants=tuple(sorted(current.grants - desired.grants)),
    )
