"""Provisioning's order: a password is on disk before the cluster can hold it, and the login
provisioning runs as is never removed (the cluster is stood in for: no broker here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

import broker.provision._apply as apply
from broker.config import KafkaSettings
from broker.errors import TransportError
from broker.kafka import ClusterAccess, read_client_file
from broker.policy import Policy, load_bundle
from broker.provision import desired_access, plan_changes, provision

POLICIES = Path(__file__).resolve().parents[3] / "policies"
ADMIN = KafkaSettings(username="admin", password=SecretStr("x"))


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_bundle(POLICIES)


@pytest.fixture
def cluster(policy: Policy, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Everything the bundle needs is there but the login and grants of wmp."""
    desired = desired_access(policy, ADMIN)
    state: dict[str, Any] = {
        "topics": frozenset(t.name for t in desired.topics),
        "users": frozenset((desired.users - {"wmp"}) | {"admin"}),
        "grants": frozenset(g for g in desired.grants if g.principal != "wmp"),
    }
    monkeypatch.setattr(apply, "read_access", lambda *_, **__: ClusterAccess(
        state["topics"], state["users"], state["grants"]))  # fmt: skip
    monkeypatch.setattr(apply, "can_log_in", lambda *_: True)
    return state


def test_a_run_failing_after_the_logins_changed_leaves_their_passwords_on_disk(
    policy: Policy, cluster: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Else the login would hold a password no file has, and the next run would make none."""
    set_on_cluster: dict[str, str] = {}

    def fails_after_logins(_: KafkaSettings, **change: Any) -> None:
        set_on_cluster.update(change["add_users"])
        cluster["users"] |= set(change["add_users"])
        raise TransportError("adding ACLs: Kafka did not answer within 30 s")

    monkeypatch.setattr(apply, "change_access", fails_after_logins)
    with pytest.raises(TransportError, match="run the same command again"):
        provision(policy, ADMIN, clients_dir=tmp_path)
    on_disk = read_client_file(tmp_path / "wmp.librdkafka.conf")["sasl.password"]
    assert on_disk == set_on_cluster["wmp"]


def test_the_login_provisioning_runs_as_is_kept_whatever_its_name(policy: Policy) -> None:
    desired = desired_access(policy, ADMIN)
    current = ClusterAccess(frozenset(), desired.users | {"kafka-admin", "stray"}, frozenset())
    plan = plan_changes(desired, current, rotate=frozenset(), acting_as="kafka-admin")
    assert plan.remove_users == ("stray",)


def test_client_files_name_the_ca_beside_them_so_they_can_be_handed_over(
    policy: Policy, cluster: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An absolute path named this host's folder: on the party's machine, 'the Kafka CA file
    /srv/accord/kafka-data/tls/ca.pem cannot be used'. The CA goes beside the files."""
    monkeypatch.setattr(apply, "change_access", lambda *_, **__: None)
    monkeypatch.setattr(apply, "_settled", lambda *_: None)
    ca = tmp_path / "tls" / "ca.pem"
    ca.parent.mkdir()
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\nsynthetic\n-----END CERTIFICATE-----\n")
    admin = ADMIN.model_copy(update={"ca_file": ca})
    clients = tmp_path / "clients"
    provision(policy, admin, clients_dir=clients)
    assert read_client_file(clients / "wmp.librdkafka.conf")["ssl.ca.location"] == "kafka-ca.pem"
    java = (clients / "wmp.properties").read_text()
    assert "ssl.truststore.location=kafka-ca.pem\n" in java
    assert (clients / "kafka-ca.pem").read_bytes() == ca.read_bytes()


def test_a_missing_ca_is_said_as_file_not_found_before_any_client_file_is_written(
    policy: Policy, cluster: dict[str, Any], tmp_path: Path
) -> None:
    from broker.errors import ConfigError

    missing = tmp_path / "no-ca.pem"
    admin = ADMIN.model_copy(update={"ca_file": missing})
    with pytest.raises(ConfigError) as refused:
        provision(policy, admin, clients_dir=tmp_path / "clients")
    assert str(refused.value) == f"the Kafka CA file {missing} cannot be read: file not found"
    assert not (tmp_path / "clients").exists()
