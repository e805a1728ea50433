"""Settings read once at the entry point: defaults users can rely on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker.config import Settings, load_settings
from broker.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_with_no_bundle_here_or_named_only_the_example_commands_get_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never the example bundle quietly: that is for the demo and policy explain/test."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ACCORD_POLICIES", raising=False)
    settings = load_settings()
    assert settings.policies_at_hand() is None
    with pytest.raises(ConfigError) as refused:
        _ = settings.policies
    assert str(refused.value) == "no policies/ here: pass --policies DIR or set ACCORD_POLICIES"
    assert settings.policies_or_example() == REPO / "policies"
    (tmp_path / "policies").mkdir()
    here = load_settings()
    assert here.policies == here.policies_at_hand() == here.policies_or_example()
    assert here.policies == Path("policies")  # one here wins
    monkeypatch.setenv("ACCORD_POLICIES", str(tmp_path / "named"))
    named = load_settings()
    assert named.policies == named.policies_or_example() == tmp_path / "named"  # as named
    assert Settings(policies=tmp_path / "given").policies == tmp_path / "given"  # wins too


def test_a_keys_folder_of_one_keystore_per_principal_gives_each_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A principal without its own keystore there is given the folder (where keys init may
    make one); the services refuse it first (tests/unit/cli/test_service_keystores.py)."""
    keys = tmp_path / "keys"
    (keys / "wmp").mkdir(parents=True)
    (keys / "wmp" / "keystore.json").write_text("{}")
    monkeypatch.setenv("ACCORD_KEYSTORE__PATH", str(keys))
    settings = load_settings()
    assert settings.keystore_path("wmp") == keys / "wmp"
    assert settings.keystore_path("nobody") == keys


def test_the_flat_bootstrap_alias_keeps_the_other_kafka_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACCORD_KAFKA_BOOTSTRAP", "kafka.example:9093")
    monkeypatch.setenv("ACCORD_KAFKA__PARTITIONS", "6")
    monkeypatch.setenv("ACCORD_KAFKA__REPLICATION_FACTOR", "3")
    kafka = load_settings().kafka
    assert (kafka.bootstrap, kafka.partitions, kafka.replication_factor) == (
        "kafka.example:9093", 6, 3
    )  # fmt: skip


def test_the_nested_spelling_wins_over_the_flat_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCORD_KAFKA_BOOTSTRAP", "flat:9092")
    monkeypatch.setenv("ACCORD_KAFKA__BOOTSTRAP", "nested:9092")
    assert load_settings().kafka.bootstrap == "nested:9092"


def test_the_flat_audit_db_alias_is_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql://accord:s3cret@db/accord"
    monkeypatch.setenv("ACCORD_AUDIT_DB", url)
    db = load_settings().audit.db
    assert db is not None
    assert db.get_secret_value() == url
    assert "s3cret" not in repr(load_settings())


def test_ops_endpoints_are_loopback_unless_asked_and_only_the_worker_serves_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = load_settings()
    for endpoint in (settings.worker, settings.indexer, settings.console):
        assert endpoint.metrics_host == "127.0.0.1"
    assert (settings.worker.metrics_port, settings.indexer.metrics_port) == (9464, None)
    assert settings.console.metrics_port is None


def test_an_ops_endpoint_is_set_per_process_from_the_environment_and_options_merge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACCORD_WORKER__METRICS_HOST", "0.0.0.0")  # noqa: S104  # what a pod asks
    monkeypatch.setenv("ACCORD_WORKER__STALE_AFTER_SECONDS", "60")
    monkeypatch.setenv("ACCORD_INDEXER__METRICS_PORT", "9465")
    monkeypatch.setenv("ACCORD_CONSOLE__METRICS_PORT", "9466")
    settings = load_settings(worker={"metrics_port": 9999})
    assert (settings.worker.metrics_host, settings.worker.metrics_port) == ("0.0.0.0", 9999)  # noqa: S104
    assert settings.worker.stale_after_seconds == 60
    assert settings.indexer.metrics_port == 9465
    assert settings.console.metrics_port == 9466


def test_a_bad_ops_port_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCORD_INDEXER__METRICS_PORT", "70000")
    with pytest.raises(ConfigError, match="ACCORD_INDEXER__METRICS_PORT"):
        load_settings()


_CLOSED_TAKES = (
    """ACCORD_SCHOOLS__CLOSED: not JSON; give a JSON list of dates, e.g. '["2026-12-08"]'"""
)


@pytest.mark.parametrize("value", ["2026-12-08", "2026-12-08, 2026-12-21", '["2026-12-08"'])
def test_a_list_setting_that_is_not_json_names_its_variable_and_what_it_takes(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not "error parsing value for field "schools"": the variable, and never its value."""
    monkeypatch.setenv("ACCORD_SCHOOLS__CLOSED", value)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert str(refused.value) == _CLOSED_TAKES


def test_a_section_given_whole_that_is_not_json_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCORD_SCHOOLS", "closed=2026-12-08")
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert str(refused.value) == "ACCORD_SCHOOLS: not JSON; give a JSON object of its settings"


def test_a_bad_date_in_a_json_list_names_the_variable_and_the_item(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The variable that was set, not ACCORD_SCHOOLS__CLOSED__1, which nobody sets."""
    monkeypatch.setenv("ACCORD_SCHOOLS__CLOSED", '["2026-12-08", "8 December"]')
    with pytest.raises(ConfigError, match=r"^ACCORD_SCHOOLS__CLOSED \(item 2\): ") as refused:
        load_settings()
    assert "December" not in str(refused.value)


def test_a_json_list_of_closed_days_and_a_comma_list_of_hosts_are_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACCORD_SCHOOLS__CLOSED", '["2026-12-08", "2026-12-21"]')
    monkeypatch.setenv("ACCORD_CONSOLE__ALLOWED_HOSTS", "a.example, b.example")
    settings = load_settings()
    assert len(settings.schools.closed) == 2
    assert settings.console.allowed_hosts == ("a.example", "b.example")


def test_accord_says_which_setting_is_not_json_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``ACCORD_SCHOOLS__CLOSED=2026-12-08 accord audit report``."""
    from broker.cli import main

    monkeypatch.setenv("ACCORD_SCHOOLS__CLOSED", "2026-12-08")
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", "report"])
    assert exit_info.value.code != 0
    assert capsys.readouterr().err == f"accord: error: {_CLOSED_TAKES}\n"


def test_a_secret_setting_is_read_from_the_file_its_file_variable_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The container convention: Compose and Kubernetes mount secrets as files."""
    (tmp_path / "pw").write_text("s3cret-from-a-file\n")
    (tmp_path / "db").write_text("postgresql://accord:x@postgres/accord")
    monkeypatch.setenv("ACCORD_KAFKA__USERNAME", "wmp")
    monkeypatch.setenv("ACCORD_KAFKA__PASSWORD_FILE", str(tmp_path / "pw"))
    monkeypatch.setenv("ACCORD_KAFKA_BOOTSTRAP", "kafka-1:9092")
    monkeypatch.setenv("ACCORD_AUDIT__DB_FILE", str(tmp_path / "db"))
    monkeypatch.setenv("ACCORD_CONSOLE__USERS_FILE", str(tmp_path / "users.json"))
    settings = load_settings()
    assert settings.kafka.password is not None
    assert settings.kafka.password.get_secret_value() == "s3cret-from-a-file"
    assert settings.kafka.bootstrap == "kafka-1:9092"  # merged with the flat alias
    assert settings.audit.db is not None
    assert settings.audit.db.get_secret_value().startswith("postgresql://")
    # A _FILE that is not a secret's stays an ordinary setting: a path.
    assert settings.console.users_file == tmp_path / "users.json"


def test_the_variable_itself_wins_over_its_file_and_an_unreadable_file_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pw").write_text("from-file")
    monkeypatch.setenv("ACCORD_KEYSTORE__PASSPHRASE_FILE", str(tmp_path / "pw"))
    monkeypatch.setenv("ACCORD_KEYSTORE__PASSPHRASE", "from-env")
    passphrase = load_settings().keystore.passphrase
    assert passphrase is not None
    assert passphrase.get_secret_value() == "from-env"
    monkeypatch.delenv("ACCORD_KEYSTORE__PASSPHRASE")
    monkeypatch.setenv("ACCORD_KEYSTORE__PASSPHRASE_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="ACCORD_KEYSTORE__PASSPHRASE_FILE: cannot read") as exc:
        load_settings()
    assert "\n" not in str(exc.value)


def test_the_flag_service_reads_its_topics_settings_again_every_10_minutes_unless_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Well within the withdrawal markers' grace: more than a day apart is refused."""
    assert load_settings().desk.flags_recheck_minutes == 10
    monkeypatch.setenv("ACCORD_DESK__FLAGS_RECHECK_MINUTES", "2.5")
    assert load_settings().desk.flags_recheck_minutes == 2.5
    monkeypatch.setenv("ACCORD_DESK__FLAGS_RECHECK_MINUTES", "2000")
    with pytest.raises(ConfigError, match="ACCORD_DESK__FLAGS_RECHECK_MINUTES"):
        load_settings()


@pytest.mark.parametrize("minutes", ["0.0001", "0.5", "0", "-1"])
def test_the_flag_services_recheck_under_a_minute_is_refused_in_one_line(
    minutes: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each reading is a DescribeConfigs on the cluster: more often than a minute is refused."""
    monkeypatch.setenv("ACCORD_DESK__FLAGS_RECHECK_MINUTES", minutes)
    with pytest.raises(ConfigError) as exc:
        load_settings()
    assert str(exc.value) == (
        "ACCORD_DESK__FLAGS_RECHECK_MINUTES: Input should be greater than or equal to 1"
    )
    monkeypatch.setenv("ACCORD_DESK__FLAGS_RECHECK_MINUTES", "1")
    assert load_settings().desk.flags_recheck_minutes == 1


@pytest.mark.parametrize("given", ["ACCORD_KAFKA__USERNAME", "ACCORD_KAFKA__PASSWORD"])
def test_half_a_kafka_login_is_refused_not_passed_over(
    given: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A password alone was ignored for the client file's; a username alone read as no login."""
    monkeypatch.setenv(given, "a-synthetic-value")
    with pytest.raises(ConfigError) as refused:
        load_settings()
    message = str(refused.value)
    assert "set both ACCORD_KAFKA__USERNAME and ACCORD_KAFKA__PASSWORD" in message
    assert "a-synthetic-value" not in message
    monkeypatch.setenv("ACCORD_KAFKA__USERNAME", "wmp")
    monkeypatch.setenv("ACCORD_KAFKA__PASSWORD", "a-synthetic-value")
    assert load_settings().kafka.username == "wmp"


@pytest.mark.parametrize(
    ("name", "said"),
    [
        (
            "ACCORD_DESK__FLAGS_RECHEK_MINUTES",
            "not a setting; did you mean ACCORD_DESK__FLAGS_RECHECK_MINUTES?",
        ),
        (
            "ACCORD_KAFKA__CA",
            "not a setting; ACCORD_KAFKA__ takes BOOTSTRAP, CA_FILE, CLIENT_ID, CREDENTIALS_DIR, "
            "PARTITIONS, PASSWORD, PASSWORD_FILE, REPLICATION_FACTOR, SECURITY_PROTOCOL, "
            "USERNAME",
        ),
        (
            "ACCORD_KAFKA__CLIENT_FILE",
            "not a setting; a login's client file is <principal>.librdkafka.conf in the folder "
            "ACCORD_KAFKA__CREDENTIALS_DIR names",
        ),
    ],
)
def test_a_setting_no_section_has_is_named_with_the_one_meant_not_pydantics_words(
    name: str, said: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'Extra inputs are not permitted' told an integrator nothing; CLIENT_FILE, the docs'
    "client file", would be spelt nearest CLIENT_ID, which is something else."""
    monkeypatch.setenv(name, "x")
    with pytest.raises(ConfigError) as exc:
        load_settings()
    assert str(exc.value) == f"{name}: {said}"


_KAFKA_TAKES = (
    "ACCORD_KAFKA__ takes BOOTSTRAP, CA_FILE, CLIENT_ID, CREDENTIALS_DIR, PARTITIONS, PASSWORD, "
    "PASSWORD_FILE, REPLICATION_FACTOR, SECURITY_PROTOCOL, USERNAME"
)


@pytest.mark.parametrize(
    "key",
    [
        "Tr0ub4dor&3 horse",  # a password pasted as a key
        "kafka-pw:s3cret",
        "a" * 42,  # longer than any setting's name
        "",
    ],
)
def test_an_unknown_key_of_a_json_section_that_is_not_a_name_is_not_repeated(
    key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review: a key of ACCORD_KAFKA='{...}' is typed input that may be a secret by mistake;
    only a key that could be a setting's name is named."""
    monkeypatch.setenv("ACCORD_KAFKA", json.dumps({key: "a-synthetic-value"}))
    with pytest.raises(ConfigError) as refused:
        load_settings()
    message = str(refused.value)
    assert message == (
        f"ACCORD_KAFKA: an unknown key (not repeated: it may be a secret); {_KAFKA_TAKES}"
    )
    assert "a-synthetic-value" not in message


def test_an_unknown_key_of_a_json_section_is_not_repeated_but_the_one_meant_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Review r46b: a key from inside the value that looks like a name may still be a secret
    (Tr0ub4dor3xyzSecret, a token): never repeated, the setting it mistypes named."""
    monkeypatch.setenv("ACCORD_KAFKA", json.dumps({"bootstrapp": "a-synthetic-value:9092"}))
    with pytest.raises(ConfigError) as refused:
        load_settings()
    message = str(refused.value)
    assert message == (
        "ACCORD_KAFKA: an unknown key (not repeated: it may be a secret); did you mean "
        "ACCORD_KAFKA__BOOTSTRAP?"
    )
    assert "a-synthetic-value" not in message
    assert "BOOTSTRAPP" not in message.upper()


@pytest.mark.parametrize("key", ["Tr0ub4dor3xyzSecret", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"])
def test_a_name_shaped_secret_pasted_as_a_json_key_is_not_repeated(
    key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCORD_KAFKA", json.dumps({key: 1}))
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert key.upper() not in str(refused.value).upper()
    assert str(refused.value).startswith("ACCORD_KAFKA: an unknown key (not repeated")


def test_a_known_key_of_a_json_section_with_a_wrong_value_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACCORD_KAFKA", json.dumps({"partitions": "many"}))
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert str(refused.value).startswith("ACCORD_KAFKA__PARTITIONS: ")
    assert "many" not in str(refused.value)


def test_a_variable_named_with_a_mistyped_setting_is_still_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The variable's own name is not a value: ACCORD_KAFKA__BOOTSTRAPP is repeated."""
    monkeypatch.setenv("ACCORD_KAFKA__BOOTSTRAPP", "a-synthetic-value:9092")
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert str(refused.value) == (
        "ACCORD_KAFKA__BOOTSTRAPP: not a setting; did you mean ACCORD_KAFKA__BOOTSTRAP?"
    )


def test_a_variable_whose_name_is_not_a_name_is_not_repeated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACCORD_KAFKA__HUNTER2 IS MY PW", "x")
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert "HUNTER2" not in str(refused.value)
    assert str(refused.value).startswith("ACCORD_KAFKA: an unknown key")
