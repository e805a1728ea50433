from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import dataclasses
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from broker.config import KafkaSecurity, KafkaSettings
from broker.devkafka._argfile import argfile
from broker.devkafka._fetch import ensure_kafka_jars
from broker.devkafka._limits import SHARED_BROKER_SETTINGS
from broker.devkafka._logging import log4j_config
from broker.devkafka._security import ADMIN, NodeSecurity
from broker.errors import DevKafkaError


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding.

    Like Kafka's own ``Uuid.randomUuid``, never one starting with ``-``: the storage tool's
    argument parser would take it for an option.
    """
    while True:
        raw = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not raw.startswith("-"):
            return raw


# Below the kernel's ephemeral range and above the well-known and most registered ports.
_PICK_FROM = 20_000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral_range() -> tuple[int, int] | None:
    """The kernel's ephemeral port range (lowest, highest), or None where it is not known."""
    try:
        low, high = (int(n) for n in _EPHEMERAL_RANGE.read_text(encoding="ascii").split()[:2])
    except (OSError, ValueError):
        return None
    return low, high


def _ephemeral_low() -> int | None:
    span = _ephemeral_range()
    return span[0] if span else None


def _in_ephemeral_range(port: int) -> tuple[int, int] | None:
    span = _ephemeral_range()
    return span if span and span[0] <= port <= span[1] else None


_GIVEN: set[int] = set()


def free_port() -> int:
    """A TCP port on the loopback interface that is free right now.

    Picked below the kernel's ephemeral range where that is known (Linux): a port the kernel
    hands out (``bind`` to port 0) can be taken by any process's next outgoing connection in
    the moment before a server binds it, which happens when tests run in parallel.
    """
    low = _ephemeral_low()
    if low is not None and low > _PICK_FROM + 1_000:
        for _ in range(200):
            port = random.randrange(_PICK_FROM, low - 1)  # noqa: S311  # a port, not a secret
            # Never the same port twice in one process: a caller asking for several (a
            # three-node cluster's nine) binds none of them until it starts.
            if port not in _GIVEN and not _port_in_use(port):
                _GIVEN.add(port)
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        chosen: int = s.getsockname()[1]
        return chosen


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def _accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _runs_kafka_with(pid: int, config: Path) -> bool:
    """True when ``pid`` is a Kafka node started with ``config`` as its server.properties.

    After a reboot (or a crash) a ``kafka.pid`` can name a process number the kernel has
    since given to something else: only this check keeps ``down`` from killing it.
    """
    proc = Path(f"/proc/{pid}")
    try:
        args = (proc / "cmdline").read_bytes().split(b"\0")
        cwd = (proc / "cwd").readlink()
    except OSError:
        return False
    if b"kafka.Kafka" not in args:
        return False
    wanted = os.path.realpath(config)
    # A relative path was relative to the node's own working directory, not this one's.
    return any(os.path.realpath(cwd / os.fsdecode(arg)) == wanted for arg in args if arg)


@dataclasses.dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    bootstrap: str
    data_dir: Path
    log: Path
    security: KafkaSecurity
    clients_dir: Path
    #: The KRaft controller's port on 127.0.0.1: the client port + 1 unless the data folder
    #: keeps another; it must be free too.
    controller_port: int


class EmbeddedKafka:
    """One KRaft node (broker + controller) on 127.0.0.1, with its data under ``data_dir``.

    The chosen ports are remembered in ``data_dir`` so that ``status`` and ``down`` find the
    broker again, and a restart comes back on the same address with the same cluster id.

    ``jvm_options`` go to both of its JVMs (the storage formatter's and the node's), after
    the defaults: the tests' short-lived nodes start with a cheaper JIT and a class-data
    archive (tests/kafka_jvm.py); everything else keeps the defaults.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        home: Path,
        port: int | None = None,
        controller_port: int | None = None,
        heap: str = "768m",
        security: KafkaSecurity | None = None,
        jvm_options: Sequence[str] = (),
    ) -> None:
        self.data_dir = data_dir
        self.home = home
        self.jvm_options = tuple(jvm_options)
        self._saved = saved = self._saved_ports()
        self._asked_port = port
        self._asked_controller_port = controller_port
        self.port = port or saved.get("port") or 9092
        self.controller_port = controller_port or saved.get("controller_port") or self.port + 1
        self.heap = heap
        # None: as the data folder was made (TLS + SCRAM for a new one).
        self.security = NodeSecurity(data_dir, security)

    def client_settings(self, principal: str = ADMIN) -> KafkaSettings:
        """How ``principal`` reaches this node (``admin`` by default, the super user)."""
        return self.security.client_settings(principal, self.bootstrap)

    def _status(self, pid: int | None) -> BrokerStatus:
        return BrokerStatus(
            pid is not None, pid, self.bootstrap, self.data_dir, self.log_path,
            self.security.mode, self.security.clients_dir, self.controller_port,
        )  # fmt: skip

    # --- files --------------------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "kafka.log"

    @property
    def _pid_file(self) -> Path:
        return self.data_dir / "kafka.pid"

    @property
    def _logs_dir(self) -> Path:
        return self.data_dir / "logs"

    def _saved_ports(self) -> dict[str, int]:
        path = self.data_dir / "ports"
        if not path.is_file():
            return {}
        pairs = (line.split("=", 1) for line in path.read_text(encoding="ascii").splitlines())
        return {k: int(v) for k, v in pairs}

    def _write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "ports").write_text(
            f"port={self.port}\ncontroller_port={self.controller_port}\n", encoding="ascii"
        )
        self.security.prepare(self.bootstrap)
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "controller.listener.names": "CONTROLLER",
            **self.security.server_properties(self.port, self.controller_port),
            "log.dirs": str(self._logs_dir),
            # One node: every internal topic has exactly one replica.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "num.partitions": "1",
            # Topics are created deliberately, with their partitions and retention; a typo in a
            # topic name must fail rather than silently create a new topic.
            "auto.create.topics.enable": "false",
            **SHARED_BROKER_SETTINGS,
        }
        path = self.data_dir / "server.properties"
        # 0600: with security on, it holds the broker's private key and the admin's password.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("".join(f"{k}={v}\n" for k, v in props.items()))
        path.chmod(0o600)
        (self.data_dir / "log4j2.properties").write_text(
            log4j_config(self.log_path), encoding="utf-8"
        )
        return path

    # --- lifecycle ----------------------------------------------------------------------
    def _running_pid(self) -> int | None:
        """This folder's node's pid, or None; a pid file naming anything else is removed."""
        if not self._pid_file.is_file():
            return None
        try:
            pid = int(self._pid_file.read_text(encoding="ascii").strip())
        except ValueError:
            pid = None
        config = self.data_dir / "server.properties"
        if pid is not None and _pid_alive(pid) and _runs_kafka_with(pid, config):
            return pid
        self._pid_file.unlink(missing_ok=True)
        return None

    def status(self) -> BrokerStatus:
        return self._status(self._running_pid())

    def _java(self) -> str:
        java = shutil.which("java")
        if java is None:
            raise DevKafkaError(
                "Java not found: Apache Kafka needs a JDK 17 or newer "
                "(Debian: apt-get install openjdk-17-jre-headless)"
            )
        return java

    def _format_storage(self, java: str, classpath: str, config: Path) -> None:
        if (self._logs_dir / "meta.properties").is_file():
            return
        cid_file = self.data_dir / "cluster.id"
        if not cid_file.is_file():
            cid_file.write_text(new_cluster_id(), encoding="ascii")
        cluster_id = cid_file.read_text(encoding="ascii").strip()
        cmd = [java, *self.jvm_options, "-cp", classpath]
        # The admin's password (format_args) is read from a file, never on the command line.
        main = ["kafka.tools.StorageTool", "format", *self.security.format_args()]
        with argfile(self.data_dir, main) as arguments:
            cmd += [arguments, "-t", cluster_id, "-c", str(config), "--ignore-formatted"]
            result = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603  # fixed argv
        if result.returncode != 0:
            last = (result.stdout + result.stderr).strip().splitlines()[-1:] or ["no output"]
            raise DevKafkaError(f"formatting Kafka storage in {self._logs_dir} failed: {last[0]}")

    def start(self, *, timeout: float = 90.0) -> BrokerStatus:
        """Start the node if it is not running and wait until it answers a metadata request."""
        if (pid := self._running_pid()) is not None:
            running = self._saved_ports().get("port", self.port)  # as the running node wrote it
            if self._asked_port is not None and self._asked_port != running:
                # Said, not ignored: the client files would name a port nothing listens on.
                raise DevKafkaError(
                    f"Kafka from {self.data_dir} already runs on port {running}; stop it "
                    f"('accord kafka down') before starting it on port {self._asked_port}"
                )
            return self._status(pid)
        self._check_ports_free()
        java = self._java()
        classpath = str(ensure_kafka_jars(self.home) / "*")
        config = self._write_config()
        self._format_storage(java, classpath, config)
        cmd = [
            java,
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.data_dir}",
            *self.jvm_options,
            "-cp",
            classpath,
            "kafka.Kafka",
            str(config.absolute()),  # what _runs_kafka_with knows this folder's node by
        ]
        # kafka.log is appended to across starts: only what this start writes explains it.
        log_from = self.log_path.stat().st_size if self.log_path.is_file() else 0
        with (self.data_dir / "kafka.out").open("ab") as out:
            proc = subprocess.Popen(  # noqa: S603  # fixed argv, no shell
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # survives the CLI that started it
            )
        self._pid_file.write_text(str(proc.pid), encoding="ascii")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self._pid_file.unlink(missing_ok=True)
                code = proc.returncode
                cause = self._bind_failure(log_from)
                raise DevKafkaError(
                    f"Kafka exited ({code}) while starting{cause}; see {self.log_path}"
                )
            # A metadata probe only once the port accepts: before that it could only fail, and
            # connecting (unlike binding) cannot take the port from the node.
            if _accepts(self.port) and _answers_metadata(self.client_settings()):
                return self._status(proc.pid)
            time.sleep(0.1)
        self._kill(proc.pid)
        raise DevKafkaError(f"Kafka did not come up within {timeout:.0f}s; see {self.log_path}")

    def port_warning(self) -> str | None:
        """One line when the node's client port lies in the kernel's ephemeral range, else None.

        The kernel picks a client's own end of a connection from that range; a client
        reconnecting to a stopped node on such a port can be given that very port and connect
        to itself (127.0.0.1:P -> 127.0.0.1:P), holding it until it gives up, so the node
        cannot start again after an outage.
        """
        if (span := _in_ephemeral_range(self.port)) is None:
            return None
        low, high = span
        return (
            f"WARNING: port {self.port} lies in this machine's ephemeral port range "
            f"({low}-{high}, {_EPHEMERAL_RANGE}): after an outage, a client retrying it can be "
            "given that very port for its own end and hold it, and Kafka cannot start again "
            f"('already in use'); pick a port below {low} ('accord kafka up --port N', "
            "with Kafka stopped)"
        )

    def _bind_failure(self, log_from: int) -> str:
        """Why the node could not bind a port, as its log since ``log_from`` says, or ""."""
        try:
            with self.log_path.open("rb") as fh:
                # Its last lines say why it stopped; a long start logs megabytes before them.
                # Smaller than it was: the log rolled since, and all of it is this start's.
                end = fh.seek(0, os.SEEK_END)
                fh.seek(max(log_from if log_from <= end else 0, end - (1 << 20)))
                text = fh.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        if "BindException" not in text:
            return ""
        # Kafka: "Socket server failed to bind to 127.0.0.1:41092: Address already in use."
        found = re.search(r"failed to bind to \S*?:(\d+)", text)
        if found is None:
            return (
                f": a port it needs on 127.0.0.1 (client {self.port}, controller "
                f"{self.controller_port}) is already in use (java.net.BindException)"
            )
        port = int(found[1])
        if port == self.controller_port:  # kept by the folder: --port does not move it
            return (
                f": the controller's port {port} on 127.0.0.1 is already in use "
                "(java.net.BindException); stop the program holding it, or use another data "
                "folder ('accord kafka up --data DIR')"
            )
        cause = f": port {port} on 127.0.0.1 is already in use (java.net.BindException)"
        if span := _in_ephemeral_range(port):
            return (
                f"{cause}; it lies in the ephemeral port range ({span[0]}-{span[1]}), where a "
                f"client retrying it can hold it as its own end (ss -tn 'sport = :{port}' "
                f"shows it): stop that client, or pick a port below {span[0]} with "
                "'accord kafka up --port N'"
            )
        return f"{cause}; stop the program holding it, or pick another with --port N"

    def _check_ports_free(self) -> None:
        if _port_in_use(self.port):
            # 'accord demo' has no --port: it starts the default folder's node on the port
            # that folder keeps, which 'accord kafka up --port' sets.
            raise DevKafkaError(
                f"port {self.port} on 127.0.0.1 is already in use; start Kafka on a free port "
                "with 'accord kafka up --port N' (its data folder keeps that port for later "
                "starts and 'accord demo')"
            )
        if not _port_in_use(self.controller_port):
            return
        # The controller's port is easy to miss: it is not on the command line.
        if "controller_port" in self._saved:
            raise DevKafkaError(
                f"the controller's port {self.controller_port} on 127.0.0.1, kept by the data "
                f"folder {self.data_dir} since it was made, is already in use; stop the program "
                "holding it, or use another data folder ('accord kafka up --data DIR')"
            )
        if self._asked_controller_port is not None:
            raise DevKafkaError(
                f"the controller's port {self.controller_port} on 127.0.0.1 is already in use"
            )
        raise DevKafkaError(
            f"the controller's port {self.controller_port} on 127.0.0.1 (the client port + 1) is "
            "already in use; start Kafka on another port with 'accord kafka up --port N'"
        )

    def stop(self, *, timeout: float = 60.0) -> bool:
        """Stop the node by its own pid (SIGTERM, so logs are flushed); False if not running."""
        pid = self._running_pid()
        if pid is None:
            self._pid_file.unlink(missing_ok=True)
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _pid_alive(pid):
            _reap(pid)
            time.sleep(0.2)
        if _pid_alive(pid):
            self._kill(pid)
        self._pid_file.unlink(missing_ok=True)
        return True

    def _kill(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _reap(pid)


def _reap(pid: int) -> None:
    # When this process started the broker, collect its exit status so it does not linger.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _answers_metadata(settings: KafkaSettings) -> bool:
    """True when the broker answers a metadata request (not merely accepts connections)."""
    from broker.kafka import KafkaClients  # noqa: PLC0415  # aiokafka loads only to probe

    probe = KafkaClients(settings).reachable()
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(probe)
    # Called from async code (a test, the demo): probe on a private loop in a thread.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, probe).result()
