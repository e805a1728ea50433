"""`accord desk flags`: a mistake about the party or the bundle is one line, before Kafka."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.unit.audit.conftest import Run

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("party", "message"),
    [
        ("nobody", "--as nobody: no such party in the policy bundle"),
        ("wmp", "--as wmp: a desk is for recipients, and wmp is an agency"),
    ],
)
def test_a_party_that_cannot_run_flags_is_one_line(
    party: str,
    message: str,
    run_cli: Run,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    argv = ["desk", "flags", "--as", party, "--policies", str(REPO / "policies")]
    code, _, err = run_cli(argv)
    assert code != 0
    assert err.strip() == f"accord: error: {message}"


def test_a_bundle_without_flag_rules_is_one_line(
    run_cli: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    bundle = tmp_path / "b"
    shutil.copytree(REPO / "policies", bundle)
    (bundle / "flags.yaml").unlink()
    code, _, err = run_cli(["desk", "flags", "--as", "sandwell-coord", "--policies", str(bundle)])
    assert code != 0
    assert err.strip() == "accord: error: the policy bundle has no flag rules (flags.yaml)"


def test_kafka_down_is_one_line_not_fausts_traceback(
    run_cli: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tests.kafka_helpers import free_port

    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    policies = ["--policies", str(REPO / "policies")]
    assert run_cli(["keys", "init", *policies])[0] == 0
    monkeypatch.setenv("ACCORD_KAFKA__SECURITY_PROTOCOL", "PLAINTEXT")
    monkeypatch.setenv("ACCORD_KAFKA__BOOTSTRAP", f"127.0.0.1:{free_port()}")
    code, _, err = run_cli(["desk", "flags", "--as", "sandwell-coord", *policies])
    assert code == 1
    assert err.startswith("accord: error: connecting to Kafka at 127.0.0.1:")
    assert len(err.strip().splitlines()) == 1


def test_a_team_without_its_desk_linkage_secret_is_one_line_before_kafka_and_none_is_made(
    run_cli: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A secret the service made would key children unlike the desk; an older desk's plain
    file is read as it is, and left where it is."""
    import os

    from broker.desk import linkage_secret_name
    from tests.kafka_helpers import free_port

    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    policies = ["--policies", str(REPO / "policies")]
    assert run_cli(["keys", "init", *policies])[0] == 0
    keys = tmp_path / "keys" / "sandwell-coord"
    (keys / f"{linkage_secret_name('sandwell-coord')}.secret").unlink()  # made before it was
    monkeypatch.setenv("ACCORD_KAFKA__SECURITY_PROTOCOL", "PLAINTEXT")
    monkeypatch.setenv("ACCORD_KAFKA__BOOTSTRAP", f"127.0.0.1:{free_port()}")
    code, _, err = run_cli(["desk", "flags", "--as", "sandwell-coord", *policies])
    assert code != 0
    assert err.startswith(f"accord: error: the keystore at {keys} has no desk linkage secret")
    assert "'accord keys init --party sandwell-coord'" in err
    assert len(err.strip().splitlines()) == 1
    assert not list(keys.glob("desk-linkage*.secret"))
    plain = keys / "desk-linkage.key"
    plain.write_bytes(os.urandom(32))
    plain.chmod(0o600)
    code, _, err = run_cli(["desk", "flags", "--as", "sandwell-coord", *policies])
    assert err.startswith("accord: error: connecting to Kafka at 127.0.0.1:")  # got past it
    assert plain.exists()
    assert not list(keys.glob("desk-linkage*.secret"))


def test_a_teams_desk_with_kafka_down_leaves_no_unclosed_consumer(tmp_path: Path) -> None:
    """The flags consumer was made before the desk's own clients started, and never closed."""
    import os
    import subprocess
    import sys

    from tests.kafka_helpers import free_port

    env = dict(os.environ, ACCORD_HOME=str(tmp_path),
               ACCORD_KAFKA__SECURITY_PROTOCOL="PLAINTEXT",
               ACCORD_KAFKA__BOOTSTRAP=f"127.0.0.1:{free_port()}")  # fmt: skip
    accord = [sys.executable, "-m", "broker"]
    subprocess.run([*accord, "keys", "init", "--policies", str(REPO / "policies")], env=env,
                   check=True, capture_output=True)  # fmt: skip
    subprocess.run([*accord, "desk", "add-user", "--as", "sandwell-coord", "bob",
                    "--password-stdin", "--no-totp"], input="a long enough secret\n", text=True,
                   env=env, check=True, capture_output=True)  # fmt: skip
    done = subprocess.run([*accord, "desk", "--as", "sandwell-coord", "--port", "0"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().endswith("no connection, or no answer")
    assert "Unclosed" not in done.stderr


def test_the_service_reads_its_topics_settings_again_as_often_as_the_setting_says(
    run_cli: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """ACCORD_DESK__FLAGS_RECHECK_MINUTES reaches the service (Kafka and faust stood aside)."""
    from datetime import timedelta

    import broker.desk
    from broker.cli import _desk_flags
    from broker.desk._withdrawn import KEEP
    from broker.errors import UsageError

    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    policies = ["--policies", str(REPO / "policies")]
    assert run_cli(["keys", "init", *policies])[0] == 0
    monkeypatch.setenv("ACCORD_DESK__FLAGS_RECHECK_MINUTES", "3")

    async def preflight(*_: Any) -> timedelta:
        return KEEP

    given: list[Any] = []

    def build(opts: Any) -> Any:
        given.append(opts)
        raise UsageError("stopped here")

    monkeypatch.setattr(_desk_flags, "_preflight", preflight)
    monkeypatch.setattr(broker.desk, "build_flags_app", build)
    code, _, err = run_cli(["desk", "flags", "--as", "sandwell-coord", *policies])
    assert (code, err.strip()) == (2, "accord: error: stopped here")
    [opts] = given
    assert opts.withdrawn_recheck == timedelta(minutes=3)
    assert opts.withdrawn_keep == KEEP
