"""The rendered broker start script formats storage only once: the admin's password is on
kafka-storage.sh's command line, where another local user could read it with ps."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from broker.deploy._compose import _START_SH
from broker.deploy._secrets import CONTAINER_SECRETS


def _stubbed(tmp_path: Path) -> tuple[Path, Path, Path]:
    """The script with Kafka's two tools and the secrets folder replaced by local stand-ins
    that note their calls; returns (script, config, calls)."""
    bin_dir, secrets = tmp_path / "kafka" / "bin", tmp_path / "secrets"
    bin_dir.mkdir(parents=True)
    secrets.mkdir()
    calls = tmp_path / "calls"
    for tool in ("kafka-storage.sh", "kafka-server-start.sh"):
        (bin_dir / tool).write_text(f'#!/bin/bash\necho "{tool} $*" >> {calls}\n')
        (bin_dir / tool).chmod(0o755)
    (secrets / "admin.librdkafka.conf").write_text("sasl.password=s3cret\n")
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


@pytest.mark.parametrize("formatted", [False, True])
def test_storage_is_formatted_with_the_admins_password_only_the_first_time(
    tmp_path: Path, formatted: bool
) -> None:
    script, config, calls = _stubbed(tmp_path)
    if formatted:
        (tmp_path / "data" / "meta.properties").write_text("version=1\n")
    subprocess.run(["bash", str(script), str(config)], check=True, timeout=30)
    ran = calls.read_text().splitlines()
    assert ran[-1] == f"kafka-server-start.sh {config}"
    formats = [line for line in ran if line.startswith("kafka-storage.sh format")]
    assert len(formats) == (0 if formatted else 1)
    assert ("s3cret" in calls.read_text()) is not formatted
