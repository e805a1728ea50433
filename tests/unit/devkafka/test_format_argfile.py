"""The admin's SCRAM password reaches Kafka's storage formatter in a launcher argument file
(0600, removed once it ran), never on its command line, where any local user reads it."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from broker.devkafka import EmbeddedKafka, _broker, free_port
from broker.devkafka._argfile import argfile, quote


def test_the_formatters_command_line_holds_no_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[list[str], Path, int, str]] = []

    def run(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        (file,) = [Path(arg[1:]) for arg in cmd if arg.startswith("@")]
        seen.append((cmd, file, stat.S_IMODE(file.stat().st_mode), file.read_text()))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(_broker, "ensure_kafka_jars", lambda *_: tmp_path / "jars")
    monkeypatch.setattr(_broker.shutil, "which", lambda *_: "/usr/bin/java")
    monkeypatch.setattr(_broker.subprocess, "run", run)
    node = EmbeddedKafka(tmp_path / "data", home=tmp_path, port=free_port())
    node._format_storage("/usr/bin/java", "jars/*", node._write_config())
    password = node.security.admin_password()
    [(cmd, file, mode, text)] = seen
    assert password not in " ".join(cmd)
    assert mode == 0o600
    assert file.parent == tmp_path / "data"  # 0700: this node's own
    assert text.split()[:2] == ['"kafka.tools.StorageTool"', '"format"']  # before the class
    assert f'"SCRAM-SHA-512=[name=admin,password={password}]"' in text
    assert not file.exists()


def test_the_argument_file_is_removed_when_the_formatter_fails(tmp_path: Path) -> None:
    made: list[Path] = []

    def fails() -> None:
        with argfile(tmp_path, ["Main", "secret"]) as arg:
            made.append(Path(arg[1:]))
            raise RuntimeError

    with pytest.raises(RuntimeError):
        fails()
    assert made
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(shutil.which("javac") is None, reason="needs a JDK's javac")
def test_the_java_launcher_reads_back_each_argument_whole(tmp_path: Path) -> None:
    """Quotes, backslashes, spaces and the SCRAM spec's ``=[],`` come back unchanged."""
    (tmp_path / "Echo.java").write_text(
        "public class Echo { public static void main(String[] a) {"
        ' for (String s : a) System.out.println(s.replace("\\n", "<nl>")); } }'
    )
    subprocess.run(["javac", "-d", str(tmp_path), str(tmp_path / "Echo.java")], check=True)
    args = ['SCRAM-SHA-512=[name=admin,password=a"b\\c d,e]', "two\nlines", "#x", "@y"]
    with argfile(tmp_path, ["Echo", *args]) as arg:
        out = subprocess.run(
            ["java", "-cp", str(tmp_path), arg, "after"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    assert out.stdout.splitlines() == [*(a.replace("\n", "<nl>") for a in args), "after"]


def test_quote_escapes_what_the_launcher_unescapes() -> None:
    assert quote('a"b\\c') == '"a\\"b\\\\c"'
