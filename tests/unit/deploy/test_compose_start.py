"""The rendered broker start script formats storage only once, and gives the formatter the
admin's password in a launcher argument file (0600, removed after), never on a command line,
where another local user could read it with ps."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from broker.deploy._compose import _START_SH
from broker.deploy._secrets import CONTAINER_SECRETS

PASSWORD = 's3cret"with\\quotes'


def _stubbed(tmp_path: Path, run_class: str | None = None) -> tuple[Path, Path, Path]:
    """The script with Kafka's tools and the secrets folder replaced by local stand-ins that
    note their calls (kafka-run-class.sh: its arguments, then an argument file's mode and
    text); returns (script, config, calls)."""
    bin_dir, secrets = tmp_path / "kafka" / "bin", tmp_path / "secrets"
    bin_dir.mkdir(parents=True)
    secrets.mkdir()
    calls = tmp_path / "calls"
    note_file = f'f="${{1#@}}"; stat -c "mode %a" "$f" >> {calls}; cat "$f" >> {calls}\n'
    for tool, body in (
        ("kafka-server-start.sh", ""),
        ("kafka-storage.sh", ""),
        ("kafka-run-class.sh", run_class or note_file),
    ):
        (bin_dir / tool).write_text(f'#!/bin/bash\necho "{tool} $*" >> {calls}\n{body}')
        (bin_dir / tool).chmod(0o755)
    (secrets / "admin.librdkafka.conf").write_text(
        f"sasl.username=admin\nsasl.password={PASSWORD}\n"
    )
    (secrets / "kafka-cluster-id").write_text("cluster-1")
    data = tmp_path / "data"
    data.mkdir()
    config = tmp_path / "server.properties"
    config.write_text(f"node.id=1\nlog.dirs={data}\n")
    script = tmp_path / "start.sh"
    script.write_text(
        _START_SH.replace("/opt/kafka", str(tmp_path / "kafka")).replace(
            CONTAINER_SECRETS, str(secrets)
        )
    )
    return script, config, calls


def _run(script: Path, config: Path, tmp_path: Path) -> None:
    # TMPDIR: where the argument file's folder goes when /dev/shm is not writable.
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path)}
    subprocess.run(["bash", str(script), str(config)], check=True, timeout=60, env=env)


@pytest.mark.parametrize("formatted", [False, True])
def test_storage_is_formatted_with_the_admins_password_only_the_first_time(
    tmp_path: Path, formatted: bool
) -> None:
    script, config, calls = _stubbed(tmp_path)
    if formatted:
        (tmp_path / "data" / "meta.properties").write_text("version=1\n")
    _run(script, config, tmp_path)
    ran = calls.read_text().splitlines()
    assert ran[-1] == f"kafka-server-start.sh {config}"
    formats = [line for line in ran if line.startswith("kafka-run-class.sh @")]
    assert len(formats) == (0 if formatted else 1)
    assert ("s3cret" in calls.read_text()) is not formatted


def test_the_password_is_in_a_0600_argument_file_not_on_the_command_line(tmp_path: Path) -> None:
    script, config, calls = _stubbed(tmp_path)
    _run(script, config, tmp_path)
    argv, mode, *text = calls.read_text().splitlines()[:-1]
    assert argv.startswith("kafka-run-class.sh @")
    assert "s3cret" not in argv
    assert f"--cluster-id cluster-1 --config {config}" in argv
    assert mode == "mode 600"
    assert text == [
        "kafka.tools.StorageTool format",
        '--add-scram "SCRAM-SHA-512=[name=admin,password=s3cret\\"with\\\\quotes]"',
    ]
    assert not Path(argv.split()[1][1:]).exists()  # removed once the formatter ran
    assert not Path(argv.split()[1][1:]).parent.exists()


@pytest.mark.skipif(shutil.which("javac") is None, reason="needs a JDK's javac")
def test_the_java_launcher_reads_the_main_class_and_the_password_whole(tmp_path: Path) -> None:
    """kafka-run-class.sh ends in ``exec java ... -cp CLASSPATH "$@"``: the launcher takes the
    main class and the SCRAM spec from the file, the other arguments after them as given."""
    (tmp_path / "classes" / "kafka" / "tools").mkdir(parents=True)
    source = tmp_path / "classes" / "kafka" / "tools" / "StorageTool.java"
    source.write_text(
        "package kafka.tools; public class StorageTool { public static void main(String[] a)"
        " throws Exception { java.nio.file.Files.write(java.nio.file.Path.of(System.getenv("
        '"OUT")), java.util.Arrays.asList(a)); } }'
    )
    subprocess.run(["javac", str(source)], check=True, timeout=120)
    run_class = f'exec java -cp "{tmp_path / "classes"}" "$@"\n'
    script, config, _ = _stubbed(tmp_path, run_class)
    out = tmp_path / "args-seen"
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path), "OUT": str(out)}
    subprocess.run(["bash", str(script), str(config)], check=True, timeout=120, env=env)
    assert out.read_text().splitlines() == [
        "format",
        "--add-scram",
        f"SCRAM-SHA-512=[name=admin,password={PASSWORD}]",
        "--ignore-formatted",
        "--cluster-id",
        "cluster-1",
        "--config",
        str(config),
    ]
