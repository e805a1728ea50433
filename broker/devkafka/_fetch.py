from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from broker.errors import DevKafkaError

_POM_ENV = "ACCORD_KAFKA_POM"


def pom_path() -> Path:
    """The POM that pins the Kafka version: ``deploy/kafka/pom.xml`` in the source tree, or
    the copy installed with the package (``broker/devkafka/pom.xml``)."""
    if env := os.environ.get(_POM_ENV):
        return Path(env)
    here = Path(__file__).resolve().parent
    source = here.parents[1] / "deploy" / "kafka" / "pom.xml"
    return source if source.is_file() else here / "pom.xml"


def _pinned_version(pom: Path) -> str:
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom.read_text(encoding="utf-8"))
    if not match:
        raise DevKafkaError(f"{pom} does not pin <kafka.version>")
    return match.group(1).strip()


def _version_or_unknown() -> str:
    try:
        return _pinned_version(pom_path())
    except (OSError, DevKafkaError):
        return "unknown"


KAFKA_VERSION = _version_or_unknown()

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_CENTRAL = "https://repo.maven.apache.org"


def _lib(home: Path, version: str) -> Path:
    return home / f"kafka-{version}" / "lib"


def kafka_jars_cached(home: Path) -> bool:
    """True when the pinned Kafka's jars are already in the cache (nothing to fetch)."""
    pom = pom_path()
    return pom.is_file() and (_lib(home, _pinned_version(pom)) / ".complete").is_file()


def _maven_failure(output: str) -> str:
    """Maven's own first ``[ERROR]`` line: what failed. Its last line is only advice (and,
    coloured, nothing but escape codes)."""
    lines = [_ANSI.sub("", line).strip() for line in output.splitlines()]
    errors = [line.removeprefix("[ERROR]").strip() for line in lines if line.startswith("[ERROR]")]
    found = next((e for e in errors if e), None) or next((x for x in reversed(lines) if x), None)
    if found is None:
        return "no output"
    found = found.removesuffix("-> [Help 1]").strip()
    return found if len(found) <= 400 else found[:400] + "…"


def ensure_kafka_jars(home: Path, *, quiet: bool = True) -> Path:
    """Return the directory holding the broker's jars, fetching them with Maven the first time.

    The copy lands in a temporary sibling and is renamed into place only when complete, so an
    interrupted fetch never leaves a half-filled cache that later runs would trust.
    """
    pom = pom_path()
    if not pom.is_file():
        raise DevKafkaError(f"cannot find the Kafka POM at {pom} (set {_POM_ENV})")
    version = _pinned_version(pom)
    lib = _lib(home, version)
    if (lib / ".complete").is_file():
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise DevKafkaError(
            "Maven (mvn) not found: it fetches Kafka from Maven Central; "
            "install it (Debian: apt-get install maven)"
        )
    staging = lib.with_name("lib.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    cmd = [
        mvn,
        "-B",
        "--no-transfer-progress",
        "-Dstyle.color=never",
        *(["-q"] if quiet else []),
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
        "-DincludeScope=runtime",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603  # fixed argv, no shell
    if result.returncode != 0:
        why = _maven_failure(result.stdout + result.stderr)
        raise DevKafkaError(
            f"Maven could not fetch Kafka {version}: {why}; check that this machine can reach "
            f"Maven Central ({_CENTRAL}), or a mirror named in ~/.m2/settings.xml"
        )
    if not any(staging.glob("kafka_2.13-*.jar")):
        raise DevKafkaError(f"Maven finished but no kafka_2.13 jar is in {staging}")
    (staging / ".complete").write_text(version, encoding="utf-8")
    shutil.rmtree(lib, ignore_errors=True)
    staging.rename(lib)
    return lib
