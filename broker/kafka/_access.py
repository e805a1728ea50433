"""Who may do what on the cluster: SCRAM logins and ACLs, read and changed as one admin.

aiokafka has no API for ACLs or SCRAM credentials; confluent-kafka's admin client (librdkafka)
has both, so it does this part. It is the broker's dependency (not the SDK's), imported only
when asked for. Every grant is an ALLOW for any host; nothing here ever writes a DENY.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from broker.config import KafkaSecurity, KafkaSettings
from broker.errors import TransportError
from broker.kafka._admin import TopicSpec
from broker.kafka._causes import refused_login, unverified_certificate
from broker.kafka._credentials import MECHANISM

__all__ = [
    "ClusterAccess",
    "Grant",
    "Operation",
    "ResourceKind",
    "can_log_in",
    "change_access",
    "read_access",
]

_SCRAM_ITERATIONS = 8192
_TIMEOUT_S = 30.0
# A cluster that does not answer its metadata request in this long is down or unreachable.
_CONNECT_S = 10.0


class ResourceKind(enum.StrEnum):
    TOPIC = "topic"
    GROUP = "group"
    TRANSACTIONAL_ID = "transactional_id"
    CLUSTER = "cluster"


class Operation(enum.StrEnum):
    """The operations Accord grants; grants found on a cluster may name any other."""

    READ = "read"
    WRITE = "write"
    # Reading a topic's settings (retention, segment life): neither Read nor Write implies it.
    DESCRIBE_CONFIGS = "describe_configs"


@dataclass(frozen=True, order=True, slots=True)
class Grant:
    """``principal`` may ``operation`` on the resource ``name`` (every name starting with it
    when ``prefixed``), from ``host``. Kinds and operations are Kafka's, in lower case."""

    principal: str
    kind: str
    name: str
    operation: str
    prefixed: bool = False
    host: str = "*"

    def describe(self) -> str:
        return f"{self.kind} {self.name}{'*' if self.prefixed else ''}"


@dataclass(frozen=True, slots=True)
class ClusterAccess:
    topics: frozenset[str]
    users: frozenset[str]
    grants: frozenset[Grant]


def _config(settings: KafkaSettings) -> dict[str, str]:
    """librdkafka's spelling of the same connection settings the aiokafka clients use."""
    conf = {"bootstrap.servers": settings.bootstrap, "client.id": "accord-provision"}
    if settings.security_protocol is KafkaSecurity.PLAINTEXT:
        return {**conf, "security.protocol": "PLAINTEXT"}
    if settings.username is None or settings.password is None:
        raise TransportError(f"provisioning needs the admin's login: {settings.no_login()}")
    conf.update(
        {
            "security.protocol": "SASL_SSL",
            "sasl.mechanisms": MECHANISM,
            "sasl.username": settings.username,
            "sasl.password": settings.password.get_secret_value(),
        }
    )
    if settings.ca_file is not None:
        conf["ssl.ca.location"] = str(settings.ca_file)
    return conf


class _Refusals:
    """librdkafka's error callback. A call that waited on a cluster refusing the login or
    presenting a certificate that does not verify fails with only "Broker transport
    failure"; the reason reaches this callback (at the next poll), and is kept here."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.login = self.certificate = False

    def __call__(self, error: Any) -> None:
        from confluent_kafka import KafkaError  # noqa: PLC0415

        code = error.code()
        if code == KafkaError._AUTHENTICATION:
            self.login = True
        elif "certificate verify failed" in str(error.str()):
            self.certificate = True

    def reason(self, admin: Any) -> str | None:
        """Why connecting failed, if it was the login or the certificate; None: not known."""
        admin.poll(0)  # serves the error callbacks queued meanwhile
        if self.login:
            return refused_login(self.settings.username)
        if self.certificate:
            return unverified_certificate(self.settings.ca_file, None)
        return None


def _admin(settings: KafkaSettings) -> tuple[Any, _Refusals]:
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415  # the broker's, not the SDK's

    # librdkafka logs each failed connection attempt to stderr itself, every ~50 ms, before
    # our one line says the same: its log goes to a logger that keeps it to itself.
    refusals = _Refusals(settings)
    conf = {**_config(settings), "logger": _quiet_logger(), "error_cb": refusals}
    return AdminClient(conf), refusals


def _quiet_logger() -> logging.Logger:
    quiet = logging.getLogger("accord.librdkafka")
    if not quiet.handlers:
        quiet.addHandler(logging.NullHandler())
        quiet.propagate = False
    return quiet


def _wait(futures: Iterable[Any], what: str, refusals: _Refusals | None = None) -> None:
    from confluent_kafka import KafkaError, KafkaException  # noqa: PLC0415

    try:
        for future in futures:
            future.result(timeout=_TIMEOUT_S)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if error is not None and error.code() == KafkaError._AUTHENTICATION:
            who = refusals.settings.username if refusals is not None else None
            raise TransportError(f"{what}: {refused_login(who)}") from None
        raise TransportError(f"{what}: {error.str() if error is not None else exc}") from None
    except TimeoutError:
        raise TransportError(f"{what}: Kafka did not answer within {_TIMEOUT_S:.0f} s") from None


def read_access(settings: KafkaSettings, *, logins: bool = True) -> ClusterAccess:
    """The cluster's topics, SCRAM users and ALLOW grants, as the admin sees them (topics
    only, without ``logins``: a cluster with no authorizer has no ACLs to read)."""
    from confluent_kafka import KafkaException  # noqa: PLC0415
    from confluent_kafka.admin import (  # noqa: PLC0415
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    admin, refusals = _admin(settings)
    try:
        topics = frozenset(admin.list_topics(timeout=_CONNECT_S).topics)
    except KafkaException as exc:
        where = f"connecting to Kafka at {settings.bootstrap}"
        raise TransportError(f"{where}: {refusals.reason(admin) or exc.args[0].str()}") from None
    try:
        if not logins:
            return ClusterAccess(topics, frozenset(), frozenset())
        users = frozenset(admin.describe_user_scram_credentials().result(timeout=_TIMEOUT_S))
        acls = admin.describe_acls(
            AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                             AclOperation.ANY, AclPermissionType.ANY)
        ).result(timeout=_TIMEOUT_S)  # fmt: skip
    except KafkaException as exc:
        raise TransportError(f"reading the cluster's ACLs: {exc.args[0].str()}") from None
    grants = {
        Grant(
            acl.principal.removeprefix("User:"),
            acl.restype.name.lower(),
            acl.name,
            acl.operation.name.lower(),
            prefixed=acl.resource_pattern_type == ResourcePatternType.PREFIXED,
            host=acl.host,
        )
        for acl in acls
        # Accord writes ALLOW grants only; a DENY someone added by hand narrows access
        # further, and is left alone.
        if acl.permission_type == AclPermissionType.ALLOW
    }
    return ClusterAccess(topics, users, frozenset(grants))


def _filter(grant: Grant) -> Any:
    """The filter matching exactly ``grant`` (what deleting an ACL takes)."""
    from confluent_kafka.admin import (  # noqa: PLC0415
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    pattern = ResourcePatternType.PREFIXED if grant.prefixed else ResourcePatternType.LITERAL
    return AclBindingFilter(
        ResourceType[grant.kind.upper()], grant.name, pattern, f"User:{grant.principal}",
        grant.host, AclOperation[grant.operation.upper()], AclPermissionType.ALLOW,
    )  # fmt: skip


def _binding(grant: Grant) -> Any:
    from confluent_kafka.admin import (  # noqa: PLC0415
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    pattern = ResourcePatternType.PREFIXED if grant.prefixed else ResourcePatternType.LITERAL
    return AclBinding(
        ResourceType[grant.kind.upper()], grant.name, pattern, f"User:{grant.principal}",
        grant.host, AclOperation[grant.operation.upper()], AclPermissionType.ALLOW,
    )  # fmt: skip


def change_access(
    settings: KafkaSettings,
    *,
    create_topics: list[TopicSpec],
    add_users: dict[str, str],
    remove_users: Iterable[str],
    add_grants: Iterable[Grant],
    remove_grants: Iterable[Grant],
) -> None:
    """Apply one plan as the admin: topics, then logins, then grants (removals first)."""
    from confluent_kafka.admin import (  # noqa: PLC0415
        NewTopic,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialDeletion,
        UserScramCredentialUpsertion,
    )

    admin, refusals = _admin(settings)
    if create_topics:
        new = [NewTopic(t.name, t.partitions, settings.replication_factor, config=t.config)
               for t in create_topics]  # fmt: skip
        made = admin.create_topics(new, request_timeout=_TIMEOUT_S).values()
        _wait(made, "creating topics", refusals)
    removals = [_filter(g) for g in remove_grants]
    if removals:
        removed = admin.delete_acls(removals, request_timeout=_TIMEOUT_S).values()
        _wait(removed, "removing ACLs", refusals)
    mechanism = ScramMechanism.SCRAM_SHA_512
    changes: list[Any] = [UserScramCredentialDeletion(u, mechanism) for u in remove_users]
    info = ScramCredentialInfo(mechanism, _SCRAM_ITERATIONS)
    changes += [UserScramCredentialUpsertion(u, info, pw.encode()) for u, pw in add_users.items()]
    if changes:
        altered = admin.alter_user_scram_credentials(changes).values()
        _wait(altered, "changing SCRAM logins", refusals)
    additions = [_binding(g) for g in add_grants]
    if additions:
        added = admin.create_acls(additions, request_timeout=_TIMEOUT_S).values()
        _wait(added, "adding ACLs", refusals)


def can_log_in(settings: KafkaSettings) -> bool:
    """True when ``settings``' login is accepted (a metadata request answers)."""
    from confluent_kafka import KafkaException  # noqa: PLC0415

    admin, _ = _admin(settings)
    try:
        admin.list_topics(timeout=5)
    except KafkaException:
        return False
    return True
