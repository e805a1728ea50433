"""Client files: one principal's way into Kafka, in the formats standard tools read unchanged.

For each principal, ``<dir>/<principal>.properties`` (Java clients, ``kafka-console-*``,
``kafka-acls``) and ``<dir>/<principal>.librdkafka.conf`` (kcat ``-F``, confluent-kafka),
both mode 0600 in a 0700 folder: they hold the principal's password. Accord's own clients
read the librdkafka file, through :func:`client_settings`, when the settings do not name a
login themselves.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from pydantic import SecretStr

from broker.config import KafkaSecurity, KafkaSettings, Settings
from broker.errors import ConfigError

__all__ = ["MECHANISM", "client_settings", "read_client_file", "write_client_files"]

MECHANISM = "SCRAM-SHA-512"


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    tmp.replace(path)


def write_client_files(
    directory: Path, principal: str, *, bootstrap: str, password: str, ca_file: Path | None
) -> tuple[Path, Path]:
    """Write ``principal``'s Java and librdkafka client files; return their paths.

    Without ``ca_file`` the clients trust the system's CAs (brokers with public certificates).
    """
    if any(c in password for c in '"\\\n') or any(c in principal for c in '"\\\n/'):
        raise ConfigError("a Kafka principal or password may not hold quotes, slashes or newlines")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    java = directory / f"{principal}.properties"
    rdkafka = directory / f"{principal}.librdkafka.conf"
    _write_private(
        java,
        f"bootstrap.servers={bootstrap}\n"
        "security.protocol=SASL_SSL\n"
        f"sasl.mechanism={MECHANISM}\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{principal}" password="{password}";\n'
        + (f"ssl.truststore.type=PEM\nssl.truststore.location={ca_file}\n" if ca_file else ""),
    )
    _write_private(
        rdkafka,
        f"bootstrap.servers={bootstrap}\n"
        "security.protocol=SASL_SSL\n"
        f"sasl.mechanisms={MECHANISM}\n"
        f"sasl.username={principal}\n"
        f"sasl.password={password}\n" + (f"ssl.ca.location={ca_file}\n" if ca_file else ""),
    )
    return java, rdkafka


def read_client_file(path: Path) -> dict[str, str]:
    """The ``key=value`` lines of a librdkafka client file."""
    out: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text (a Kafka client file)") from None
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            out[key.strip()] = value.strip()
    return out


def client_settings(settings: Settings, principal: str) -> KafkaSettings:
    """``settings.kafka`` as ``principal``: its login from its client file unless the settings
    name one (``ACCORD_KAFKA__USERNAME``/``__PASSWORD``), and the file's bootstrap address
    and CA unless the settings name those."""
    kafka = settings.kafka
    if kafka.security_protocol is KafkaSecurity.PLAINTEXT or kafka.username is not None:
        return kafka
    path = settings.kafka_credentials_dir / f"{principal}.librdkafka.conf"
    if not path.is_file():
        # No login: KafkaClients says so, in one line naming the file, if a client is made.
        return kafka.without_login(principal, path)
    conf = read_client_file(path)
    update: dict[str, object] = {
        "username": conf.get("sasl.username", principal),
        "password": SecretStr(conf.get("sasl.password", "")),
    }
    if "bootstrap" not in kafka.model_fields_set and "bootstrap.servers" in conf:
        update["bootstrap"] = conf["bootstrap.servers"]
    if kafka.ca_file is None and "ssl.ca.location" in conf:
        # A relative CA is beside the client file: how a party is handed its files and the
        # CA, to keep in one folder wherever that is.
        update["ca_file"] = path.parent / conf["ssl.ca.location"]
    return kafka.model_copy(update=update)
