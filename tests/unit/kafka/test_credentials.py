"""Client files: what standard tools read, private, and how Accord's clients pick a login."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from broker.config import KafkaSecurity, KafkaSettings, Settings
from broker.errors import ConfigError
from broker.kafka import KafkaClients, client_settings, read_client_file, write_client_files


def test_client_files_hold_what_java_clients_and_librdkafka_expect(tmp_path: Path) -> None:
    java, rdkafka = write_client_files(
        tmp_path / "clients", "wmp", bootstrap="127.0.0.1:9092", password="pw-1",
        ca_file=Path("/ca.pem"),
    )  # fmt: skip
    props = dict(line.split("=", 1) for line in java.read_text().splitlines())
    assert props["security.protocol"] == "SASL_SSL"
    assert props["sasl.mechanism"] == "SCRAM-SHA-512"
    assert props["sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="wmp" password="pw-1";'
    )
    assert (props["ssl.truststore.type"], props["ssl.truststore.location"]) == ("PEM", "/ca.pem")
    assert read_client_file(rdkafka) == {
        "bootstrap.servers": "127.0.0.1:9092", "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": "wmp", "sasl.password": "pw-1",
        "ssl.ca.location": "/ca.pem",
    }  # fmt: skip
    for path in (java, rdkafka):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(java.parent.stat().st_mode) == 0o700


def test_a_password_that_would_break_the_jaas_line_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        write_client_files(tmp_path, "wmp", bootstrap="b:1", password='a"b', ca_file=None)


def test_a_principal_logs_in_from_its_client_file_unless_a_login_is_set(tmp_path: Path) -> None:
    clients = tmp_path / "clients"
    write_client_files(clients, "wmp", bootstrap="kafka:9093", password="pw", ca_file=Path("/ca"))
    settings = Settings(home=tmp_path, kafka=KafkaSettings(credentials_dir=clients))
    wmp = client_settings(settings, "wmp")
    assert (wmp.username, wmp.bootstrap, wmp.ca_file) == ("wmp", "kafka:9093", Path("/ca"))
    assert wmp.password is not None
    assert wmp.password.get_secret_value() == "pw"
    explicit = Settings(
        home=tmp_path,
        kafka=KafkaSettings(username="x", password=SecretStr("y"), credentials_dir=clients),
    )
    assert client_settings(explicit, "wmp").username == "x"
    pinned = Settings(home=tmp_path, kafka=KafkaSettings(bootstrap="elsewhere:1",
                                                         credentials_dir=clients))  # fmt: skip
    assert client_settings(pinned, "wmp").bootstrap == "elsewhere:1"


async def test_without_a_login_no_client_is_built(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    clients = KafkaClients(client_settings(settings, "wmp"))  # no file: no login
    with pytest.raises(ConfigError) as refused:
        clients.producer("p")
    looked_for = tmp_path / "kafka-data" / "clients" / "wmp.librdkafka.conf"
    assert str(refused.value).startswith(  # whose login, and the file looked for
        f"no Kafka login for wmp: {looked_for} does not exist (ACCORD_KAFKA__CREDENTIALS_DIR)"
    )
    assert "\n" not in str(refused.value)
    plaintext = KafkaClients(KafkaSettings(security_protocol=KafkaSecurity.PLAINTEXT))
    assert plaintext.principal is None
    plaintext.producer("p")  # an explicit opt-in builds, and logs in as nobody


def test_a_client_file_that_is_not_utf8_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "wmp.librdkafka.conf"
    path.write_bytes("sasl.password=caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"wmp.librdkafka.conf: not UTF-8 text"):
        read_client_file(path)


def test_a_ca_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.pem"
    kafka = KafkaSettings(username="wmp", password=SecretStr("pw"), ca_file=missing)
    with pytest.raises(ConfigError) as refused:
        KafkaClients(kafka).producer("p")
    assert str(refused.value) == (  # not 'FileNotFoundError'
        f"the Kafka CA file {missing} cannot be used: file not found "
        "(ACCORD_KAFKA__CA_FILE names one elsewhere)"
    )


def test_a_relative_ca_in_a_client_file_is_read_beside_it(tmp_path: Path) -> None:
    """How provisioning writes them, so a party's folder works wherever it is kept."""
    clients = tmp_path / "elsewhere"
    clients.mkdir()
    (clients / "wmp.librdkafka.conf").write_text(
        "sasl.username=wmp\nsasl.password=pw\nssl.ca.location=kafka-ca.pem\n"
    )
    settings = Settings(home=tmp_path, kafka=KafkaSettings(credentials_dir=clients))
    assert client_settings(settings, "wmp").ca_file == clients / "kafka-ca.pem"


@pytest.mark.parametrize("protocol", [KafkaSecurity.PLAINTEXT, KafkaSecurity.SASL_SSL])
def test_a_service_on_plaintext_kafka_says_so_when_it_starts(protocol: KafkaSecurity) -> None:
    from structlog.testing import capture_logs

    from broker.kafka import warn_if_plaintext

    with capture_logs() as logs:
        warn_if_plaintext(KafkaClients(KafkaSettings(security_protocol=protocol)))
    warned = [e for e in logs if e["event"] == "kafka_plaintext"]
    assert [e["log_level"] for e in warned] == (
        ["warning"] if protocol is KafkaSecurity.PLAINTEXT else []
    )


def test_a_relative_ca_in_a_client_file_is_beside_it(tmp_path: Path) -> None:
    """How a party is handed its files and the CA: one folder, wherever it is kept."""
    clients = tmp_path / "handed-over"
    write_client_files(clients, "wmp", bootstrap="kafka.example:9094", password="pw",
                       ca_file=Path("kafka-ca.pem"))  # fmt: skip
    settings = Settings(home=tmp_path, kafka=KafkaSettings(credentials_dir=clients))
    assert client_settings(settings, "wmp").ca_file == clients / "kafka-ca.pem"
