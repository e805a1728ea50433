"""What stops a gateway from starting: each unsafe setting, in one line, before it listens."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from broker.config import GatewaySettings, load_settings
from broker.errors import ConfigError
from broker.gateway import check_gateway
from tests.unit.gateway.conftest import TOKEN

REPO = Path(__file__).resolve().parents[3]


def _cfg(**kw: object) -> GatewaySettings:
    return GatewaySettings(token=SecretStr(TOKEN), **kw)  # type: ignore[arg-type]


def test_a_gateway_without_a_token_does_not_start() -> None:
    with pytest.raises(ConfigError, match="ACCORD_GATEWAY__TOKEN_FILE"):
        check_gateway(GatewaySettings())


def test_a_short_or_unsendable_token_is_refused_without_quoting_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for bad in ("short-token", "a token with spaces " * 3):
        monkeypatch.setenv("ACCORD_GATEWAY__TOKEN", bad)
        with pytest.raises(ConfigError, match="ACCORD_GATEWAY__TOKEN") as err:
            load_settings()
        assert bad.strip() not in str(err.value)


def test_the_token_is_read_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text(TOKEN + "\n")
    monkeypatch.setenv("ACCORD_GATEWAY__TOKEN_FILE", str(tmp_path / "token"))
    token = load_settings().gateway.token
    assert token is not None
    assert token.get_secret_value() == TOKEN


def test_loopback_is_the_default_and_needs_no_tls() -> None:
    _, hosts, tls = check_gateway(_cfg())
    assert not tls
    assert hosts.allows("127.0.0.1:8780")
    assert not hosts.allows("gateway.example")


def test_a_network_address_without_tls_is_refused_unless_a_tls_proxy_is_declared() -> None:
    with pytest.raises(ConfigError, match="without TLS"):
        check_gateway(_cfg(host="10.1.2.3"))
    _, hosts, tls = check_gateway(_cfg(host="10.1.2.3", tls_terminated_by_proxy=True))
    assert not tls
    assert hosts.allows("10.1.2.3")


def test_a_wildcard_address_needs_its_host_names() -> None:
    with pytest.raises(ConfigError, match="ACCORD_GATEWAY__ALLOWED_HOSTS"):
        check_gateway(_cfg(host="0.0.0.0", tls_terminated_by_proxy=True))  # noqa: S104
    _, hosts, _ = check_gateway(_cfg(host="0.0.0.0", tls_terminated_by_proxy=True,  # noqa: S104
                                     allowed_hosts=("gw.agency.example",)))  # fmt: skip
    assert hosts.allows("gw.agency.example:8780")
    assert not hosts.allows("evil.example")


def test_tls_files_are_both_given_and_must_load(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    with pytest.raises(ConfigError, match="both"):
        check_gateway(_cfg(host="10.1.2.3", tls_cert=cert))
    cert.write_text("not a certificate")
    key.write_text("not a key")
    with pytest.raises(ConfigError, match="do not load"):
        check_gateway(_cfg(host="10.1.2.3", tls_cert=cert, tls_key=key))


def test_tls_that_loads_is_served(tmp_path: Path) -> None:
    from broker.crypto import tls_ca, tls_leaf

    ca_cert, ca_key = tls_ca("test gateway CA", days=1)
    leaf_cert, leaf_key = tls_leaf(ca_cert, ca_key, "gw", hosts=["gw.agency.example"], days=1)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(leaf_cert)
    key.write_bytes(leaf_key)
    _, _, tls = check_gateway(_cfg(host="10.1.2.3", tls_cert=cert, tls_key=key))
    assert tls


def test_the_cli_says_a_missing_token_in_one_line(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ACCORD_HOME": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-m", "broker", "gateway", "--as", "wmp"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1
    assert run.stderr.startswith("accord: error: the gateway needs a bearer token")


def test_the_cli_refuses_a_network_address_without_tls_in_one_line(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ACCORD_HOME": str(tmp_path),
           "ACCORD_GATEWAY__TOKEN": TOKEN}  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-m", "broker", "gateway", "--as", "wmp", "--host", "192.0.2.10"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1
    assert "without TLS" in run.stderr
    assert TOKEN not in run.stderr


def test_the_cli_asks_did_you_mean_of_a_misspelt_party_as_publish_does(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ACCORD_HOME": str(tmp_path),
           "ACCORD_GATEWAY__TOKEN": TOKEN, "ACCORD_POLICIES": str(REPO / "policies")}  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-m", "broker", "gateway", "--as", "wmpp"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode != 0
    assert run.stderr.count("\n") == 1
    assert "names no party 'wmpp': did you mean wmp?" in run.stderr


@pytest.mark.parametrize(
    ("written", "says"),
    [
        (TOKEN + "\n\n", "ends in 1 line break"),
        (TOKEN + "\r\n\r\n", "ends in 1 line break"),
        (TOKEN + "\n\n\n", "ends in 2 line breaks"),
        ("short-token\n", "shorter than 32 characters (it has 11)"),
        (TOKEN[:20] + "\x01" + TOKEN[20:], "it holds 1 other character"),
    ],
)
def test_a_bad_token_file_is_named_as_the_file_saying_what_is_wrong_never_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, written: str, says: str
) -> None:
    (tmp_path / "token").write_text(written, newline="")
    monkeypatch.setenv("ACCORD_GATEWAY__TOKEN_FILE", str(tmp_path / "token"))
    with pytest.raises(ConfigError) as err:
        load_settings()
    message = str(err.value)
    assert message.startswith("ACCORD_GATEWAY__TOKEN_FILE: ")
    assert says in message
    assert "Value error" not in message
    assert TOKEN[:8] not in message
    assert "short-token" not in message


def test_a_wildcard_address_without_host_names_speaks_of_the_records_systems() -> None:
    with pytest.raises(ConfigError) as err:
        check_gateway(_cfg(host="0.0.0.0", tls_terminated_by_proxy=True))  # noqa: S104
    assert "records systems that call the gateway" in str(err.value)
    assert "browser" not in str(err.value)


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("http://gw.agency.example:80", "'http://gw.agency.example:80' is not a host name"),
        ("gw.agency.example:8780", "(just 'gw.agency.example')"),
        ("gw.agency.example/v1", "no scheme, port or path"),
        ("two words", "'two words' is not a host name or address"),
        ("gw\x1b[31m", "an entry holds characters no host name has"),
    ],
)
def test_an_allowed_host_that_is_no_host_name_is_said_as_it_is(entry: str, says: str) -> None:
    """Printable text is said back (a setting, not a secret), with what is wrong with it."""
    with pytest.raises(ConfigError) as err:
        check_gateway(_cfg(allowed_hosts=("gw.example", entry)))
    assert str(err.value).startswith("ACCORD_GATEWAY__ALLOWED_HOSTS: ")
    assert says in str(err.value)
    assert "unprintable" not in str(err.value)
