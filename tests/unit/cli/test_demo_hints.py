"""What the demo prints for another terminal runs there as pasted (the ``accord`` it runs,
the environment it relies on, never a secret's value), and a port it cannot have is said at
once, naming the option that picks another."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import broker.devkafka
from broker.cli import main
from broker.cli._demo_hints import DemoShell, accord_command, check_port, with_port_hint
from broker.config import KafkaSecurity, KafkaSettings
from broker.errors import UsageError

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def venv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A virtual environment's bin folder, with this interpreter and its ``accord``."""
    bin_dir = tmp_path / "repo" / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "accord").write_text("#!/bin/sh\n")
    (bin_dir / "accord").chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    return bin_dir


def test_after_make_demo_accord_is_the_venv_s_from_the_repository(venv: Path) -> None:
    """``make demo`` runs .venv/bin/accord, which is not on PATH: the README's spelling."""
    assert accord_command(venv.parents[1]) == ".venv/bin/accord"
    assert accord_command(venv.parents[2]) == "repo/.venv/bin/accord"


def test_from_another_folder_accord_is_the_venv_s_full_path(venv: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert accord_command(elsewhere) == str(venv / "accord")


def test_an_activated_venv_is_not_taken_for_accord_on_path(
    venv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Activation puts .venv/bin on this terminal's PATH only, not on the next one's."""
    monkeypatch.setenv("PATH", f"{venv}:/usr/bin")
    assert accord_command(venv.parents[1]) == ".venv/bin/accord"


def test_an_accord_installed_on_path_is_just_accord(
    venv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As pipx installs it: a link in a folder on every terminal's PATH."""
    on_path = tmp_path / "local-bin"
    on_path.mkdir()
    (on_path / "accord").symlink_to(venv / "accord")
    monkeypatch.setenv("PATH", f"{on_path}:/usr/bin")
    assert accord_command(Path("/")) == "accord"


def test_without_an_accord_script_it_is_python_m_broker(
    venv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (venv / "accord").unlink()
    assert accord_command(venv) == f"{venv / 'python'} -m broker"


def _shell(home: Path, environ: dict[str, str], **kafka: object) -> DemoShell:
    return DemoShell.for_demo(
        home=home, policies=Path("policies"), passphrase_file=home / "keystore-passphrase",
        kafka=KafkaSettings(**kafka), environ=environ, cwd=REPO,  # type: ignore[arg-type]
    )  # fmt: skip


def test_secrets_are_named_never_shown(tmp_path: Path) -> None:
    environ = {
        "ACCORD_KEYSTORE__PASSPHRASE": "s3cret-passphrase",
        "ACCORD_AUDIT__DB": "postgresql://accord:Sup3r-Secret@db/audit",
        "ACCORD_KAFKA__PASSWORD": "kafka-Secret",
        "ACCORD_CONSOLE__HOST": "127.0.0.2",
        "PATH": "/usr/bin",
    }
    shell = _shell(tmp_path, environ)
    text = "\n".join(shell.setup())
    for secret in ("s3cret-passphrase", "Sup3r-Secret", "kafka-Secret"):
        assert secret not in text
    assert shell.secrets == (
        "ACCORD_AUDIT__DB", "ACCORD_KAFKA__PASSWORD", "ACCORD_KEYSTORE__PASSPHRASE"
    )  # fmt: skip
    assert shell.exports["ACCORD_CONSOLE__HOST"] == "127.0.0.2"  # the demo ran with it
    assert "PATH" not in shell.exports


def test_the_default_home_is_not_exported_and_a_plaintext_broker_s_address_is(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    plain = _shell(
        tmp_path / ".cache" / "accord", {}, bootstrap="127.0.0.1:19092",
        security_protocol=KafkaSecurity.PLAINTEXT,
    )  # fmt: skip
    assert "ACCORD_HOME" not in plain.exports
    assert plain.exports["ACCORD_KAFKA__BOOTSTRAP"] == "127.0.0.1:19092"
    assert plain.exports["ACCORD_POLICIES"] == str(REPO / "policies")


def test_pasted_in_another_folder_the_setup_gives_the_demo_s_settings(tmp_path: Path) -> None:
    """What another terminal gets from the printed lines: the demo's home, its passphrase
    file (read, so the keystores open) and its bundle, whatever folder it started in."""
    home = tmp_path / "demo home"  # a space: the lines must quote
    home.mkdir()
    (home / "keystore-passphrase").write_text("the-demo-passphrase\n")
    (home / "keystore-passphrase").chmod(0o600)
    shell = _shell(home, {})
    probe = "from broker.config import load_settings as l; s = l(); " + (
        "print(s.home, s.policies, s.keystore_passphrase().get_secret_value(), sep='|')"
    )
    script = "\n".join([*shell.setup(), f"{sys.executable} -c {probe!r}"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")}
    out = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == f"{home}|{REPO / 'policies'}|the-demo-passphrase"


@pytest.fixture
def taken() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_taken_port_names_its_option(taken: int) -> None:
    with pytest.raises(UsageError, match=rf"127\.0\.0\.1:{taken}: .*pass --metrics-port PORT"):
        check_port("127.0.0.1", taken, "--metrics-port")
    check_port("127.0.0.1", 0, "--metrics-port")  # any free port: nothing to check


def test_a_port_error_gets_its_option_only_when_it_is_that_port_s() -> None:
    taken = UsageError("cannot serve metrics and probes on 127.0.0.1:9464: Address in use")
    assert "--metrics-port" in str(with_port_hint(taken, 9464, "--metrics-port"))
    other = UsageError("the policy bundle has no parties")
    assert with_port_hint(other, 9464, "--metrics-port") is other


@pytest.mark.parametrize("option", ["--metrics-port", "--console-port"])
def test_the_demo_says_a_taken_port_before_starting_kafka(
    option: str,
    taken: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def no_kafka(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("Kafka started before the ports were checked")

    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    monkeypatch.setattr(broker.devkafka, "EmbeddedKafka", no_kafka)
    others = {"--metrics-port": "0", "--console-port": "0", option: str(taken)}
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", *[a for pair in others.items() for a in pair]])
    assert exit_info.value.code != 0
    [line] = capsys.readouterr().err.strip().splitlines()
    assert f"127.0.0.1:{taken}" in line
    assert f"pass {option} PORT" in line


def test_the_demo_s_help_says_how_to_run_kafka_off_9092(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The demo has no Kafka port option: its help names the command that moves Kafka."""
    main(["demo", "--help"])
    helped = " ".join(capsys.readouterr().out.split())
    assert "127.0.0.1:9092 by default" in helped
    assert "run 'accord kafka up --port N' first (with Kafka stopped)" in helped
