"""Settings mistakes once accepted without a word (a platform engineer's walkthrough): an
empty ALLOWED_HOSTS, TLS both the app's and a proxy's, an ``ACCORD_*`` name with one
underscore where two belong, a did-you-mean that passed over the ``_FILE`` names. Each is
refused in one line naming the variable, never its value."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from broker.config import Settings, check_environment, load_settings
from broker.config._env_names import NOT_SETTINGS, unknown_variable
from broker.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
APPS = ("console", "desk", "gateway")
SECRET = "a-synthetic-value"


def _refused(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    def start() -> None:  # as every accord command does
        check_environment()
        load_settings()

    with pytest.raises(ConfigError) as refused:
        start()
    message = str(refused.value)
    assert "\n" not in message
    return message


def test_an_embedding_application_is_warned_of_an_unknown_variable_not_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Review r46d: an integrator's own ACCORD_SENDER_NAME, or Kubernetes' service link for
    someone's Service named accord-*, stopped load_settings inside their program."""
    monkeypatch.setenv("ACCORD_SENDER_NAME", "police")
    monkeypatch.setenv("ACCORD_KAFKA_BOOTSTRAP_SERVICE_HOST", "10.0.0.6")
    with capture_logs() as logs:
        settings = load_settings()
    assert settings.kafka is not None
    [warned] = [e for e in logs if e["event"] == "settings_unknown_variable"]
    assert warned["log_level"] == "warning"
    with pytest.raises(ConfigError):
        check_environment()


# -- 1. an empty ALLOWED_HOSTS ------------------------------------------------------------


@pytest.mark.parametrize("app", APPS)
@pytest.mark.parametrize("value", ["", " ", "[]", " , "])
def test_an_empty_allowed_hosts_is_refused_not_read_as_no_name(
    app: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stray `ACCORD_GATEWAY__ALLOWED_HOSTS=` line gave a gateway that answered 400
    bad_host to its own name while /readyz said ok, and a desk on 0.0.0.0 past the check
    that refuses it unset."""
    name = f"ACCORD_{app.upper()}__ALLOWED_HOSTS"
    message = _refused(monkeypatch, **{name: value})
    assert message == (
        f"{name}: empty: set it to the host names the app is reached by (comma-separated), "
        "or leave it unset for the address it listens on"
    )
    monkeypatch.setenv(name, "app.example, 192.0.2.7")
    assert getattr(load_settings(), app).allowed_hosts == ("app.example", "192.0.2.7")
    monkeypatch.delenv(name)
    assert getattr(load_settings(), app).allowed_hosts is None  # unset: as before


# -- 2. TLS both the app's and a proxy's -----------------------------------------------------


@pytest.mark.parametrize("app", APPS)
@pytest.mark.parametrize("files", [("TLS_CERT", "TLS_KEY"), ("TLS_CERT",), ("TLS_KEY",)])
def test_tls_files_and_a_tls_terminating_proxy_together_are_refused(
    app: str, files: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both was served as TLS without a word: where TLS ends is one or the other."""
    prefix = f"ACCORD_{app.upper()}__"
    for file in files:
        monkeypatch.setenv(f"{prefix}{file}", str(tmp_path / file.lower()))
    monkeypatch.setenv(f"{prefix}TLS_TERMINATED_BY_PROXY", "true")
    assert _refused(monkeypatch) == (
        f"{prefix}TLS_TERMINATED_BY_PROXY: true while TLS_CERT/TLS_KEY are set: say where TLS "
        "ends, at the app (TLS_CERT and TLS_KEY) or at a proxy in front "
        "(TLS_TERMINATED_BY_PROXY=true), not both"
    )
    monkeypatch.setenv(f"{prefix}TLS_TERMINATED_BY_PROXY", "false")
    assert getattr(load_settings(), app).tls_cert == (
        tmp_path / "tls_cert" if "TLS_CERT" in files else None
    )
    for file in files:
        monkeypatch.delenv(f"{prefix}{file}")
    monkeypatch.setenv(f"{prefix}TLS_TERMINATED_BY_PROXY", "true")
    assert getattr(load_settings(), app).tls_terminated_by_proxy is True


# -- 3. an ACCORD_* name that no setting has -------------------------------------------------


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("ACCORD_CONSOLE_HOST", "ACCORD_CONSOLE__HOST"),
        ("ACCORD_CONSOLE_SECURE_COOKIES", "ACCORD_CONSOLE__SECURE_COOKIES"),
        ("ACCORD_KEYSTORE_PASSPHRASE_FILE", "ACCORD_KEYSTORE__PASSPHRASE_FILE"),
        ("ACCORD_GATEWAY_TOKEN_FILE", "ACCORD_GATEWAY__TOKEN_FILE"),
        ("ACCORD_POLICY", "ACCORD_POLICIES"),
        ("ACCORD_POLICIES_DIR", "ACCORD_POLICIES"),
        ("ACCORD_AUDIT_DB_FILE", "ACCORD_AUDIT__DB_FILE"),
        ("ACCORD_KAFKA_BOOTSTRAPP", "ACCORD_KAFKA__BOOTSTRAP"),  # the flat alias misspelt
        ("ACCORD_KAFKAA__BOOTSTRAP", "ACCORD_KAFKA__BOOTSTRAP"),  # a section misspelt
        ("ACCORD_CONSLE_HOST", "ACCORD_CONSOLE__HOST"),
        ("ACCORD_DESK___PORT", "ACCORD_DESK__PORT"),
        ("accord_console_host", "ACCORD_CONSOLE__HOST"),  # read without regard to case
    ],
)
def test_a_name_with_one_underscore_for_two_is_refused_with_the_one_meant(
    name: str, meant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ACCORD_CONSOLE_HOST=0.0.0.0 left the console on loopback, ACCORD_GATEWAY_TOKEN_FILE
    left the gateway without its token, without a word; a double-underscore misspelling was
    already refused so."""
    message = _refused(monkeypatch, **{name: SECRET})
    assert message == f"{name.upper()}: not a setting; did you mean {meant}?"
    assert SECRET not in message


def test_a_name_near_no_setting_is_told_what_accord_takes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _refused(monkeypatch, ACCORD_ZZZ="x") == (
        "ACCORD_ZZZ: not a setting; ACCORD_ takes HOME, POLICIES, and <SECTION>__<NAME> for "
        "the sections AUDIT, CONSOLE, DESK, ENVELOPE, GATEWAY, INDEXER, KAFKA, KEYSTORE, "
        "SCHOOLS, WORKER"
    )


@pytest.mark.parametrize("name", ["ACCORD_HUNTER2 IS MY PW", "ACCORD_" + "A" * 60, "ACCORD_"])
def test_a_name_that_is_not_a_name_is_not_repeated(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = _refused(monkeypatch, **{name: SECRET})
    assert message.startswith("an ACCORD_* variable is not a setting, its name not repeated")
    assert "HUNTER2" not in message
    assert "AAAA" not in message


def test_kubernetes_service_links_are_named_as_such(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pod with a Service named accord-console beside it, and service links on, gets
    ACCORD_CONSOLE_PORT too, which alone would read as a misspelt ACCORD_CONSOLE__PORT."""
    message = _refused(
        monkeypatch,
        ACCORD_CONSOLE_PORT="tcp://10.0.0.1:8765",
        ACCORD_CONSOLE_PORT_8765_TCP="tcp://10.0.0.1:8765",
        ACCORD_CONSOLE_SERVICE_HOST="10.0.0.1",
    )
    assert message.startswith("ACCORD_CONSOLE_PORT_8765_TCP: not a setting; Kubernetes' ")
    assert "enableServiceLinks: false" in message


def test_the_names_accord_and_its_tooling_read_are_not_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in NOT_SETTINGS:
        monkeypatch.setenv(name, "127.0.0.1:9092" if name == "ACCORD_KAFKA_BOOTSTRAP" else "x")
    monkeypatch.setenv("ACCORD_TEST_POSTGRES_URL", "postgresql://localhost/x")
    monkeypatch.setenv("ACCORD_TEST_ANYTHING_ELSE", "x")
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    monkeypatch.setenv("ACCORD_POLICIES", str(tmp_path))
    monkeypatch.setenv("ACCORD_SCHOOLS", '{"timezone": "Europe/London"}')
    monkeypatch.setenv("ACCORD_KEYSTORE__PASSPHRASE_FILE", str(tmp_path / "nope"))
    monkeypatch.delenv("ACCORD_KEYSTORE__PASSPHRASE", raising=False)
    with pytest.raises(ConfigError, match="ACCORD_KEYSTORE__PASSPHRASE_FILE: cannot read"):
        load_settings()  # read, so refused for its file only
    monkeypatch.delenv("ACCORD_KEYSTORE__PASSPHRASE_FILE")
    assert load_settings().home == tmp_path


# Names the repository spells that are no variable: a Python constant, a test's check that a
# render sets no such variable, and the examples of what is refused (_env_names, the docs).
_NOT_VARIABLES = {
    "ACCORD_SELECTOR",
    "ACCORD_FLAGS",
    "ACCORD_CONSOLE_HOST",
    "ACCORD_CONSOLE_PORT",
    "ACCORD_CONSOLE_SERVICE_HOST",
    "ACCORD_KEYSTORE_PASSPHRASE_FILE",
}


def test_every_accord_name_the_repository_spells_is_a_setting_or_listed() -> None:
    """A variable read on purpose (the tests', a tool's) must be in NOT_SETTINGS, or every
    command run with it set refuses to start."""
    spelt: set[str] = set()
    roots = ["broker", "tests", "benchmarks", "deploy", "docs", ".ci", "Makefile", "README.md"]
    for root in roots:
        path = REPO / root
        for file in [path] if path.is_file() else path.rglob("*"):
            skip = file.suffix in {".pyc", ".png", ".db", ".jar"} or file == Path(__file__)
            if file.is_file() and not skip:  # this file's names are examples of the refused
                text = file.read_text(errors="replace")
                spelt |= set(re.findall(r"\bACCORD_[A-Z0-9_]*[A-Z0-9]\b", text))
    refused = {
        name
        for name in spelt - _NOT_VARIABLES
        if "__" not in name and unknown_variable({name: "x"}, Settings) is not None
    }
    assert refused == set()


# -- 4. the _FILE names in a did-you-mean ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("ACCORD_KEYSTORE__PASSPHRASEFILE", "did you mean ACCORD_KEYSTORE__PASSPHRASE_FILE?"),
        ("ACCORD_AUDIT__DBFILE", "did you mean ACCORD_AUDIT__DB_FILE?"),
        ("ACCORD_GATEWAY__TOKENFILE", "did you mean ACCORD_GATEWAY__TOKEN_FILE?"),
        ("ACCORD_KAFKA__PASWORD_FILE", "did you mean ACCORD_KAFKA__PASSWORD_FILE?"),
        ("ACCORD_KEYSTORE__FILE_PASSPHRASE", "did you mean ACCORD_KEYSTORE__PASSPHRASE_FILE?"),
        ("ACCORD_GATEWAY__FILE_TOKEN", "did you mean ACCORD_GATEWAY__TOKEN_FILE?"),
        ("ACCORD_KEYSTORE__PASSPRASE", "did you mean ACCORD_KEYSTORE__PASSPHRASE?"),
        ("ACCORD_AUDIT__X", "ACCORD_AUDIT__ takes DB, DB_FILE"),
    ],
)
def test_a_did_you_mean_offers_a_secrets_file_variable(
    name: str, said: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PASSPHRASEFILE was told PASSPHRASE: the secret itself in the environment."""
    assert _refused(monkeypatch, **{name: "x"}) == f"{name}: not a setting; {said}"
