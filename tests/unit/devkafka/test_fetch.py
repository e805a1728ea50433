"""Fetching Kafka's jars: Maven's failure is quoted by its first error, without colour codes,
and ``python -m broker.devkafka`` (``make kafka-jars``) fails in one line."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from broker.devkafka import KAFKA_VERSION, ensure_kafka_jars
from broker.errors import DevKafkaError

REPO = Path(__file__).resolve().parents[3]

# What Maven 3.8 printed offline (-B -q), escape codes and all; its last line is only codes.
OFFLINE = (
    "\x1b[0m\x1b[0m[ERROR] No plugin found for prefix 'dependency' in the current project and "
    "in the plugin groups [org.apache.maven.plugins, org.codehaus.mojo] available from the "
    "repositories [local (/root/.m2/repository), central (https://repo.maven.apache.org/maven2)]"
    " -> [Help 1]\n"
    "[ERROR] \n"
    "[ERROR] To see the full stack trace of the errors, re-run Maven with the -e switch.\n"
    "[ERROR] [Help 1] http://cwiki.apache.org/confluence/display/MAVEN/NoPluginFoundForPrefix\n"
    "\x1b[0m\x1b[0m"
)


def _fake_mvn(bin_dir: Path, output: str, args_file: Path) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / "out.txt").write_text(output)
    mvn = bin_dir / "mvn"
    mvn.write_text(f'#!/bin/sh\necho "$@" > "{args_file}"\ncat "{bin_dir}/out.txt"\nexit 1\n')
    mvn.chmod(mvn.stat().st_mode | stat.S_IXUSR)


def test_a_maven_failure_quotes_its_first_error_line_and_points_at_maven_central(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = tmp_path / "args"
    _fake_mvn(tmp_path / "bin", OFFLINE, args)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(DevKafkaError) as err:
        ensure_kafka_jars(tmp_path / "home")
    message = str(err.value)
    assert message.startswith(
        f"Maven could not fetch Kafka {KAFKA_VERSION}: No plugin found for prefix 'dependency'"
    )
    assert "check that this machine can reach Maven Central" in message
    assert "\x1b" not in message
    assert "[ERROR]" not in message
    assert "[Help 1]" not in message
    assert "\n" not in message
    # Asked for plain output in the first place: no progress lines, no colours.
    assert {"-B", "--no-transfer-progress", "-Dstyle.color=never"} <= set(args.read_text().split())


def _module(tmp_path: Path, *argv: str, path: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ACCORD_HOME": str(tmp_path / "home"), "PATH": path}
    return subprocess.run(
        [sys.executable, "-m", "broker.devkafka", *argv],
        cwd=REPO, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_python_m_broker_devkafka_says_a_missing_maven_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = _module(tmp_path, path=str(tmp_path / "empty"))  # no mvn anywhere on it
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("kafka-jars: Maven (mvn) not found")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_cached_answers_without_fetching_whether_the_jars_are_there(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert _module(tmp_path, "--cached", path=str(tmp_path / "empty")).returncode == 1
    lib = tmp_path / "home" / f"kafka-{KAFKA_VERSION}" / "lib"
    lib.mkdir(parents=True)
    (lib / ".complete").write_text(KAFKA_VERSION)
    cached = _module(tmp_path, "--cached", path=str(tmp_path / "empty"))
    assert (cached.returncode, cached.stdout, cached.stderr) == (0, "", "")
    fetched = _module(tmp_path, path=str(tmp_path / "empty"))  # cached: Maven is not needed
    assert (fetched.returncode, fetched.stdout) == (0, f"kafka jars: {lib}\n")
