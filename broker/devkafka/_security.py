"""The embedded Kafka's security: a local CA, the broker's certificate, an admin login.

Secure by default, like a deployment: clients connect over TLS (a CA made here, with
cryptography's x509 API, signs the broker's certificate) and log in with SCRAM-SHA-512, one
principal each; the controller listener takes only the broker's own certificate (mutual TLS);
the StandardAuthorizer denies whatever no ACL allows, and only ``admin`` is a super user.
PLAINTEXT, with no encryption, no login and no authorizer, is an explicit opt-in for local
experiments, chosen when the data folder is made and never changed afterwards.

Files under the data folder: ``tls/ca.pem`` (what clients trust), ``tls/ca.key``,
``tls/broker.pem`` and ``tls/broker.key`` (0600); ``clients/<principal>.properties`` and
``clients/<principal>.librdkafka.conf`` (0600), the admin's written here and every other
principal's by ``accord kafka provision``, naming ``clients/kafka-ca.pem`` (a copy of
``tls/ca.pem``) relatively; each start points them all at the node's port.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from pathlib import Path

from pydantic import SecretStr

from broker.config import KafkaSecurity, KafkaSettings
from broker.crypto import tls_ca, tls_leaf, tls_not_after
from broker.errors import DevKafkaError
from broker.kafka import MECHANISM, read_client_file, write_client_files
from broker.principals import Principal

ADMIN = str(Principal.ADMIN)
#: The CA certificate's name beside the client files (``accord deploy render``'s too).
CA_BESIDE = "kafka-ca.pem"

BROKER_CN = "kafka-broker"  # the broker's certificate subject: its principal on the controller
_RENEW_WITHIN = dt.timedelta(days=30)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _inline(pem: bytes) -> str:
    # A .properties value spans one line; java.util.Properties turns "\n" back into newlines.
    return pem.decode("ascii").strip().replace("\n", "\\n")


def _with_bootstrap(line: str, bootstrap: str) -> str:
    key, sep, _ = line.partition("=")
    if not sep or key.strip() != "bootstrap.servers":
        return line
    return f"{key}={bootstrap}" + line[len(line.rstrip("\r\n")) :]


class NodeSecurity:
    """How one embedded node is secured, and the files that say so."""

    def __init__(self, data_dir: Path, requested: KafkaSecurity | None) -> None:
        self.data_dir = data_dir
        self._mode_file = data_dir / "security"
        saved = (
            self._mode_file.read_text(encoding="ascii").strip()
            if self._mode_file.is_file()
            else None
        )
        if saved is None and (data_dir / "logs" / "meta.properties").is_file():
            raise DevKafkaError(
                f"the Kafka data in {data_dir} was made before Kafka security (no logins, no "
                "ACLs); stop it and delete the folder, or use another --data folder"
            )
        if saved is not None and requested is not None and saved != requested.value:
            raise DevKafkaError(
                f"the Kafka data in {data_dir} was made for {saved}; a node keeps its security "
                "mode for life (use another --data folder)"
            )
        self.mode = KafkaSecurity(saved) if saved else (requested or KafkaSecurity.SASL_SSL)

    @property
    def secured(self) -> bool:
        return self.mode is KafkaSecurity.SASL_SSL

    @property
    def tls_dir(self) -> Path:
        return self.data_dir / "tls"

    @property
    def clients_dir(self) -> Path:
        return self.data_dir / "clients"

    @property
    def ca_file(self) -> Path:
        return self.tls_dir / "ca.pem"

    def prepare(self, bootstrap: str) -> None:
        """Make what is missing: the mode file, the CA, a fresh-enough broker certificate and
        the admin's login; every client file here then names ``bootstrap``, which may have
        moved (``accord kafka up --port``)."""
        # 0700: the topics' logs (the audit log's subject keys among them), the TLS material
        # and the client files are this node's, and no other user's on the machine.
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self._mode_file.write_text(self.mode.value, encoding="ascii")
        if not self.secured:
            return
        self.tls_dir.mkdir(mode=0o700, exist_ok=True)
        if not self.ca_file.is_file():
            cert, key = tls_ca("Accord embedded Kafka CA", days=3650)
            _write_private(self.tls_dir / "ca.key", key)
            self.ca_file.write_bytes(cert)
        broker = self.tls_dir / "broker.pem"
        now = dt.datetime.now(dt.UTC)
        if not broker.is_file() or tls_not_after(broker.read_bytes()) - now < _RENEW_WITHIN:
            cert, key = tls_leaf(
                self.ca_file.read_bytes(), (self.tls_dir / "ca.key").read_bytes(), BROKER_CN,
                hosts=["127.0.0.1", "localhost"], days=730,
            )  # fmt: skip
            _write_private(self.tls_dir / "broker.key", key)
            broker.write_bytes(cert)
        # The CA beside the client files, named relatively (as provisioning and deploy
        # render do): the folder can be handed over, or moved, whole.
        write_client_files(
            self.clients_dir, ADMIN, bootstrap=bootstrap, password=self.admin_password(),
            ca_file=Path(CA_BESIDE),
        )  # fmt: skip
        beside = self.clients_dir / CA_BESIDE
        tmp = beside.with_name(f".{CA_BESIDE}.tmp")
        tmp.write_bytes(self.ca_file.read_bytes())
        tmp.replace(beside)
        self._point_clients_at(bootstrap)

    def _point_clients_at(self, bootstrap: str) -> None:
        # Every principal's settings take the address from its own client file: one left on
        # the old port would fail to connect, with nothing saying why.
        for path in sorted(self.clients_dir.glob("*")):
            if not path.name.endswith((".properties", ".librdkafka.conf")) or not path.is_file():
                continue
            try:
                lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
            except UnicodeDecodeError:
                continue  # not a client file this node wrote
            moved = [_with_bootstrap(line, bootstrap) for line in lines]
            if moved != lines:
                # Beside it, then renamed over it: a crash never leaves a login half written.
                tmp = path.with_name(f".{path.name}.tmp")
                _write_private(tmp, "".join(moved).encode("utf-8"))
                tmp.replace(path)

    def admin_password(self) -> str:
        conf = self.clients_dir / f"{ADMIN}.librdkafka.conf"
        if conf.is_file():
            return read_client_file(conf)["sasl.password"]
        return secrets.token_urlsafe(24)

    def format_args(self) -> list[str]:
        """What ``kafka-storage format`` needs: the admin's SCRAM credential, from the start.

        A secret: for a launcher argument file (``_argfile``), never a command line."""
        if not self.secured:
            return []
        return ["--add-scram", f"{MECHANISM}=[name={ADMIN},password={self.admin_password()}]"]

    def server_properties(self, port: int, controller_port: int) -> dict[str, str]:
        if not self.secured:
            return {
                "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
                "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
                "inter.broker.listener.name": "PLAINTEXT",
                "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            }
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
        return {
            "listeners": f"CLIENT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"CLIENT://127.0.0.1:{port}",
            "inter.broker.listener.name": "CLIENT",
            "listener.security.protocol.map": "CLIENT:SASL_SSL,CONTROLLER:SSL",
            "sasl.enabled.mechanisms": MECHANISM,
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            f"listener.name.client.{MECHANISM.lower()}.sasl.jaas.config": (
                f'{scram} required username="{ADMIN}" password="{self.admin_password()}";'
            ),
            # The JVM cannot read encrypted PKCS#8 keys from a PEM file; inline, unencrypted,
            # the key is protected by this file's mode (0600), like tls/broker.key.
            "ssl.keystore.type": "PEM",
            "ssl.keystore.key": _inline((self.tls_dir / "broker.key").read_bytes()),
            "ssl.keystore.certificate.chain": _inline((self.tls_dir / "broker.pem").read_bytes()),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca_file),
            "listener.name.controller.ssl.client.auth": "required",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{ADMIN};User:CN={BROKER_CN}",
            "allow.everyone.if.no.acl.found": "false",
        }

    def client_settings(self, principal: str, bootstrap: str) -> KafkaSettings:
        """How ``principal`` reaches this node (its client file must exist when secured)."""
        if not self.secured:
            return KafkaSettings(bootstrap=bootstrap, security_protocol=KafkaSecurity.PLAINTEXT)
        conf = self.clients_dir / f"{principal}.librdkafka.conf"
        if not conf.is_file():
            raise DevKafkaError(f"no client file for {principal} in {self.clients_dir}")
        values = read_client_file(conf)
        return KafkaSettings(
            bootstrap=bootstrap,
            username=values["sasl.username"],
            password=SecretStr(values["sasl.password"]),
            ca_file=self.ca_file,
            credentials_dir=self.clients_dir,
        )
