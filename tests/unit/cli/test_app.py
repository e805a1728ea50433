"""The `accord` command line: help, and one-line errors for usage mistakes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from broker.cli import main
from broker.devkafka import free_port


def test_help_lists_every_command_group(capsys: pytest.CaptureFixture[str]) -> None:
    code = 0
    try:
        main(["--help"])
    except SystemExit as exc:
        code = exc.code
    assert code in (0, None)
    out = capsys.readouterr().out
    for command in ("kafka", "keys", "demo"):
        assert command in out


@pytest.mark.parametrize(
    "argv",
    [
        ["kafka", "up", "--bogus"], ["no-such-command"], ["kafka", "up", "--port", "notanumber"],
        ["console", "--port", "99999"], ["worker", "--metrics-port", "-5"],
        ["worker", "--checkpoint-every", "0"], ["demo", "--rate", "0"],
    ],
)  # fmt: skip
def test_a_usage_mistake_is_one_line_on_stderr_and_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("accord: error:")
    assert "Traceback" not in captured.err + captured.out
    options = [a for a in argv if a.startswith("--")]
    if options and options[0] != "--bogus":  # an out-of-range value names its option
        assert f"Invalid value for '{options[0]}'" in lines[0]


@pytest.mark.parametrize(
    ("variable", "value"),
    [("ACCORD_KAFKA__PARTITIONS", "abc"), ("ACCORD_CONSOLE__PORT", "99999"),
     ("ACCORD_KAFKA", "notjson"), ("ACCORD_KEYSTORE", '{"passphrase": "s3cret-pass", "x": [}'),
     ("ACCORD_KAFKA__BOOTSTRAP", "127.0.0.1:abc"), ("ACCORD_KAFKA__BOOTSTRAP", "host:99999"),
     ("ACCORD_KAFKA__BOOTSTRAP", "kafka-no-port"), ("ACCORD_KAFKA__BOOTSTRAP", "[::1"),
     ("ACCORD_SCHOOLS__TIMEZONE", "Amy Hollis 9434765919")],  # review s43r4: was echoed
)  # fmt: skip
def test_a_bad_setting_is_one_line_naming_it_never_its_value(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as exit_info:
        main(["keys", "list"])
    assert exit_info.value.code != 0
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("accord: error:")
    assert value not in captured.err
    assert "s3cret" not in captured.err


@pytest.mark.parametrize("argv", [["tail", "--as", "hub-a"], ["audit", "verify", "--from-topic"]])
def test_kafka_down_is_one_line_with_no_library_noise(argv: list[str], tmp_path: Path) -> None:
    """No aiokafka retry log and no 'Unclosed AIOKafkaConsumer' after our own error line."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "parties.yaml").write_text("parties:\n  hub-a: {name: Hub, kind: hub}\n")
    env = dict(os.environ, ACCORD_HOME=str(tmp_path / "home"),
               ACCORD_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}",
               ACCORD_KAFKA__USERNAME="hub-a", ACCORD_KAFKA__PASSWORD="pw")  # fmt: skip
    init = [sys.executable, "-m", "broker", "keys", "init", "--policies", str(bundle)]
    subprocess.run(init, env=env, check=True, capture_output=True)
    done = subprocess.run(
        [sys.executable, "-m", "broker", *argv], env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("accord: error:")
    assert "127.0.0.1:" in done.stderr
    assert done.stderr.strip().endswith(": no connection, or no answer")


@pytest.mark.parametrize("argv", [["tail", "--as", "hub-a"], ["worker"]])
def test_no_kafka_login_is_one_line_saying_how_to_get_one(argv: list[str], tmp_path: Path) -> None:
    """Secure by default: without a login (or a client file) nothing tries to connect."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "parties.yaml").write_text("parties:\n  hub-a: {name: Hub, kind: hub}\n")
    env = dict(os.environ, ACCORD_HOME=str(tmp_path / "home"), ACCORD_POLICIES=str(bundle),
               ACCORD_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}")  # fmt: skip
    init = [sys.executable, "-m", "broker", "keys", "init", "--policies", str(bundle)]
    subprocess.run(init, env=env, check=True, capture_output=True)
    done = subprocess.run(
        [sys.executable, "-m", "broker", *argv], env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "no Kafka login" in done.stderr
    assert "accord kafka provision" in done.stderr


@pytest.mark.parametrize(
    ("principal", "says"),
    [("admin", "admin is Kafka's super user"), ("governance", "governance has keys but no")],
)
def test_rotating_a_password_provisioning_cannot_change_is_refused_not_a_silent_no_op(
    principal: str, says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """An operator answering a leaked password must not read 'nothing to change' as done."""
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    policies = Path(__file__).resolve().parents[3] / "policies"
    with pytest.raises(SystemExit) as exit_info:
        main(["kafka", "provision", "--policies", str(policies), "--rotate", principal])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"accord: error: --rotate: {says}")
    assert len(err.strip().splitlines()) == 1


def test_provisioning_with_kafka_down_is_one_line_without_librdkafkas_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """librdkafka logged every failed connection attempt itself (about 580 lines in 30 s)."""
    from broker.kafka import _access

    monkeypatch.setattr(_access, "_CONNECT_S", 2.0)
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    monkeypatch.setenv("ACCORD_KAFKA__SECURITY_PROTOCOL", "PLAINTEXT")
    monkeypatch.setenv("ACCORD_KAFKA__BOOTSTRAP", f"127.0.0.1:{free_port()}")
    policies = Path(__file__).resolve().parents[3] / "policies"
    with pytest.raises(SystemExit) as exit_info:
        main(["kafka", "provision", "--policies", str(policies), "--dry-run"])
    assert exit_info.value.code == 1
    err = capfd.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("accord: error: connecting to Kafka at 127.0.0.1:")


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["audit", "subject", "--nhs-number", "999", "010", "9281", "--reason", "complaint"],
         "got 2 unexpected extra argument(s)"),
        (["audit", "subject", "--nhs-number", "9990109281", "--reason", "Ruby Holland"],
         "Invalid value for '--reason': the value given is not one of"),
        (["audit", "report", "--reason", "oversight", "--since", "Ruby Holland 2015"],
         "--since: not an ISO 8601 date or date-time"),
    ],
)  # fmt: skip
def test_a_usage_mistake_never_echoes_what_was_typed(
    argv: list[str], says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """An NHS number typed with its spaces is three arguments; a name may be typed anywhere."""
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--as", "ig-jo"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert says in err
    for typed in ("010", "9281", "Ruby", "Holland"):
        assert typed not in err


@pytest.mark.parametrize(
    "argv",
    [["policy", "impact", "--policies", "policies", "--since", "9999999d"],
     ["audit", "report", "--as", "ig-jo", "--reason", "oversight", "--until", "9999-12-31"]],
)  # fmt: skip
def test_a_date_past_what_dates_hold_is_one_line_not_an_overflow_traceback(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    monkeypatch.chdir(Path(__file__).resolve().parents[3])
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err == "accord: error: a date or number given is out of range\n"
