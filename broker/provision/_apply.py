"""Provisioning: read the cluster as the admin, plan, apply, hand out client files."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr

from broker.config import KafkaSecurity, KafkaSettings
from broker.errors import ConfigError, TransportError
from broker.kafka import can_log_in, change_access, read_access, write_client_files
from broker.policy import Policy
from broker.provision._plan import Plan, desired_access, plan_changes

__all__ = ["provision"]

#: The CA certificate's name beside the client files, as ``accord deploy render`` names it.
CA_BESIDE = "kafka-ca.pem"


def provision(
    policy: Policy,
    admin: KafkaSettings,
    *,
    clients_dir: Path,
    dry_run: bool = False,
    rotate: frozenset[str] = frozenset(),
    passwords: Mapping[str, str] | None = None,
) -> Plan:
    """Bring the cluster to what ``policy`` needs (idempotent); return what was (or, with
    ``dry_run``, would be) changed.

    Each new login gets a random password, written only to its client files in
    ``clients_dir`` (0600): hand each party its own two files, and nothing else; or, when
    ``passwords`` names it, that password (its client files exist already: a deployment
    rendered them), and no file is written. A PLAINTEXT cluster has no logins or ACLs to
    manage: only its topics are made.
    """
    secured = admin.security_protocol is KafkaSecurity.SASL_SSL
    desired = desired_access(policy, admin, logins=secured)
    current = read_access(admin, logins=secured)
    plan = plan_changes(desired, current, rotate=rotate, acting_as=admin.username)
    if dry_run or not plan:
        return plan
    given = passwords or {}
    made = {u: secrets.token_urlsafe(24) for u in plan.add_users if u not in given}
    logins = {u: given.get(u) or made[u] for u in plan.add_users}
    # Written before the cluster is changed: a login set with a password no file holds
    # could never be used (a later run sees it exists and makes no new one), and a rotated
    # one would lock its principal out. A run that fails part-way leaves files whose
    # passwords the cluster may not hold yet; running it again makes them agree.
    ca = _ca_beside(clients_dir, admin.ca_file) if made else None
    for user, password in made.items():
        write_client_files(
            clients_dir, user, bootstrap=admin.bootstrap, password=password, ca_file=ca
        )
    try:
        change_access(
            admin,
            create_topics=list(plan.create_topics),
            add_users=logins,
            remove_users=plan.remove_users,
            add_grants=plan.add_grants,
            remove_grants=plan.remove_grants,
        )
        _settled(admin, plan, logins)
    except TransportError as exc:
        raise TransportError(
            f"{exc}; the client files in {clients_dir} hold the passwords this run set: run "
            "the same command again, with the same options, to finish"
        ) from exc
    for user in plan.remove_users:
        for suffix in (".properties", ".librdkafka.conf"):
            (clients_dir / f"{user}{suffix}").unlink(missing_ok=True)
    return plan


def _ca_beside(clients_dir: Path, ca: Path | None) -> Path | None:
    """Put the CA the clients trust beside their files, as ``CA_BESIDE``, and return that
    relative name for them to give (None: the system's CAs, nothing to copy).

    An absolute path names this host's folder: handed to another organisation, the files
    would point at a file that is not there. Accord's SDK and CLI read a relative CA beside
    the client file; kcat and Java clients read it from the folder they run in."""
    if ca is None:
        return None
    try:
        data = ca.read_bytes()
    except OSError as exc:
        why = "file not found" if isinstance(exc, FileNotFoundError) else exc.strerror
        raise ConfigError(f"the Kafka CA file {ca} cannot be read: {why}") from None
    clients_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = clients_dir / f".{CA_BESIDE}.tmp"  # the CA there may be the one read: replaced whole
    tmp.write_bytes(data)
    tmp.replace(clients_dir / CA_BESIDE)
    return Path(CA_BESIDE)


def _settled(admin: KafkaSettings, plan: Plan, passwords: dict[str, str]) -> None:
    """Return once the broker enforces the plan: what the admin reads back matches it, and a
    new login is accepted. Kafka applies logins and ACLs asynchronously, and a principal
    handed its client file must not be refused for a few hundred milliseconds."""
    deadline = time.monotonic() + 30
    logins = admin.security_protocol is KafkaSecurity.SASL_SSL
    while True:
        now = read_access(admin, logins=logins)
        done = (
            set(plan.add_users) <= now.users
            and not set(plan.remove_users) & now.users
            and set(plan.add_grants) <= now.grants
            and not set(plan.remove_grants) & now.grants
        )
        if done and passwords:
            user, password = next(iter(passwords.items()))
            done = can_log_in(
                admin.model_copy(update={"username": user, "password": SecretStr(password)})
            )
        if done:
            return
        if time.monotonic() > deadline:
            raise TransportError("Kafka did not apply the provisioning plan within 30 s")
        time.sleep(0.2)
