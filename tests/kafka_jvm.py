"""JVM options for the tests' Kafka nodes, which start by the dozen and live for minutes.

Most of a node's start is the JVM loading and compiling Kafka's classes, on a machine the test
workers share. Two options cut that CPU by more than half (docs/performance.md, *Build and
test time*): C1 only (``TieredStopAtLevel=1``: no second, optimising JIT, which only pays off
in a long run) and a class-data archive of Kafka's classes (``SharedArchiveFile``), made once
per JDK and Kafka jars in Accord's cache by one node started for that. Production nodes
(``accord kafka up``, the demo, the benchmarks) keep the defaults.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from broker.devkafka import EmbeddedKafka, ensure_kafka_jars, free_port
from broker.errors import DevKafkaError

QUICK_JIT = "-XX:TieredStopAtLevel=1"


def quick_start_options(home: Path) -> list[str]:
    """The tests' JVM options: C1 only, and the class archive when one is (or can be) made."""
    archive = class_archive(home)
    return [QUICK_JIT, *([f"-XX:SharedArchiveFile={archive}"] if archive else [])]


def _archive_key(java: str, jars: Path) -> str:
    # The JVM refuses an archive made by another JDK build or for jars of another size or
    # time (with a warning in kafka.out, nothing more): such an archive gets another name.
    real = Path(os.path.realpath(java))
    parts = [str(real)]
    for path in [real.parent.parent / "lib" / "modules", *sorted(jars.glob("*.jar"))]:
        with contextlib.suppress(OSError):
            st = path.stat()
            parts.append(f"{path.name}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _usable(java: str, classpath: str, archive: Path) -> bool:
    # -Xshare:on: the JVM fails rather than run without the archive it cannot map.
    cmd = [java, "-Xshare:on", f"-XX:SharedArchiveFile={archive}", "-cp", classpath, "-version"]
    return subprocess.run(cmd, capture_output=True, check=False).returncode == 0


def class_archive(home: Path) -> Path | None:
    """This JDK's archive of the classes a Kafka node loads while starting; made on first use
    (once per machine, under a lock the test workers share); None when it cannot be made."""
    java = shutil.which("java")
    if java is None:
        return None  # start says what is missing
    jars = ensure_kafka_jars(home)
    folder = home / "jvm-archives"
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / f"kafka-{_archive_key(java, jars)}.jsa"
    if archive.is_file():
        return archive
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other workers wait for this one's archive
        if archive.is_file():
            return archive
        for left in folder.glob(".kafka-*.tmp"):  # by a run killed while making one
            left.unlink(missing_ok=True)
        made = folder / f".{archive.name}.{os.getpid()}.tmp"
        # The JVM writes the archive when it exits after SIGTERM, as stop ends it.
        with tempfile.TemporaryDirectory() as tmp:
            node = EmbeddedKafka(
                Path(tmp) / "kafka", home=home, port=free_port(), controller_port=free_port(),
                heap="512m", jvm_options=[QUICK_JIT, f"-XX:ArchiveClassesAtExit={made}"],
            )  # fmt: skip
            try:
                node.start()
            except DevKafkaError:
                pass  # the tests' own nodes will fail to start too, and say why
            finally:
                node.stop()
        if not made.is_file() or not _usable(java, str(jars / "*"), made):
            made.unlink(missing_ok=True)
            return None
        made.replace(archive)
        for old in folder.glob("kafka-*.jsa"):  # another JDK's or Kafka's: never mapped again
            if old != archive:
                old.unlink(missing_ok=True)
        return archive
