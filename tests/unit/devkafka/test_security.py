"""The embedded Kafka's security: secure from the first start, its mode fixed for life."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from broker.config import KafkaSecurity
from broker.crypto import tls_not_after
from broker.devkafka._security import NodeSecurity
from broker.errors import DevKafkaError


def test_a_new_node_is_secured_with_a_ca_a_broker_certificate_and_an_admin_login(
    tmp_path: Path,
) -> None:
    node = NodeSecurity(tmp_path, None)
    node.prepare("127.0.0.1:9092")
    assert node.mode is KafkaSecurity.SASL_SSL
    for private in ("tls/ca.key", "tls/broker.key", "clients/admin.librdkafka.conf"):
        assert stat.S_IMODE((tmp_path / private).stat().st_mode) == 0o600, private
    props = node.server_properties(9092, 9093)
    assert props["listener.security.protocol.map"] == "CLIENT:SASL_SSL,CONTROLLER:SSL"
    assert props["listener.name.controller.ssl.client.auth"] == "required"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:admin;User:CN=kafka-broker"
    assert "PLAINTEXT" not in "".join(props.values())
    assert node.format_args()[0] == "--add-scram"
    admin = node.client_settings("admin", "127.0.0.1:9092")
    assert (admin.username, admin.ca_file) == ("admin", tmp_path / "tls" / "ca.pem")


def test_the_admins_client_files_name_the_ca_beside_them(tmp_path: Path) -> None:
    """As provisioning's and deploy render's do: the folder works wherever it is kept."""
    from broker.kafka import read_client_file

    NodeSecurity(tmp_path, None).prepare("127.0.0.1:9092")
    clients = tmp_path / "clients"
    conf = read_client_file(clients / "admin.librdkafka.conf")
    assert conf["ssl.ca.location"] == "kafka-ca.pem"
    assert "ssl.truststore.location=kafka-ca.pem\n" in (clients / "admin.properties").read_text()
    assert (clients / "kafka-ca.pem").read_bytes() == (tmp_path / "tls" / "ca.pem").read_bytes()


def test_the_admin_password_and_the_ca_survive_a_restart(tmp_path: Path) -> None:
    first = NodeSecurity(tmp_path, None)
    first.prepare("127.0.0.1:9092")
    tls = tmp_path / "tls"
    ca, cert, password = (
        (tls / "ca.pem").read_bytes(),
        (tls / "broker.pem").read_bytes(),
        (first.admin_password()),
    )
    again = NodeSecurity(tmp_path, None)
    again.prepare("127.0.0.1:9192")  # a new port: the client files follow it
    assert ((tls / "ca.pem").read_bytes(), (tls / "broker.pem").read_bytes()) == (ca, cert)
    assert again.admin_password() == password
    assert "127.0.0.1:9192" in (tmp_path / "clients" / "admin.properties").read_text()
    assert tls_not_after(cert) < tls_not_after(ca)  # the CA outlives what it signs


def test_plaintext_is_an_opt_in_for_a_new_node_and_a_node_keeps_its_mode(tmp_path: Path) -> None:
    plain = NodeSecurity(tmp_path / "plain", KafkaSecurity.PLAINTEXT)
    plain.prepare("127.0.0.1:9092")
    assert "authorizer.class.name" not in plain.server_properties(9092, 9093)
    with pytest.raises(DevKafkaError, match="keeps its security mode"):
        NodeSecurity(tmp_path / "plain", KafkaSecurity.SASL_SSL)
    secure = NodeSecurity(tmp_path / "secure", None)
    secure.prepare("127.0.0.1:9092")
    with pytest.raises(DevKafkaError, match="keeps its security mode"):
        NodeSecurity(tmp_path / "secure", KafkaSecurity.PLAINTEXT)


def test_a_data_folder_from_before_security_is_refused_not_reused_unsecured(
    tmp_path: Path,
) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "meta.properties").write_text("version=1\n")
    with pytest.raises(DevKafkaError, match="before Kafka security"):
        NodeSecurity(tmp_path, None)
