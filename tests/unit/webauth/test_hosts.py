"""Which host names a web app answers to (``HostCheck``): its own, loopback's, and no other, so
that a DNS-rebinding page cannot drive a console or a desk from the officer's browser."""

from __future__ import annotations

import pytest

from broker.config import ConsoleSettings, load_settings
from broker.errors import ConfigError
from broker.webauth import HostCheck
from broker.webauth._hosts import host_name, printable_host

SETTING = "ACCORD_CONSOLE__ALLOWED_HOSTS"


def check(**settings: object) -> HostCheck:
    return HostCheck.of(ConsoleSettings(**settings), setting=SETTING)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1:8765", "localhost:8765", "LOCALHOST", "localhost.", "[::1]:8765", "127.0.0.1"],
)
def test_on_loopback_loopback_names_are_answered_at_any_port(host: str) -> None:
    assert check().allows(host)


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:8765", "127.0.0.1.evil.example", "127.0.0.2:8765",
     "localhost:80:80", "[::1", "", None, "*", "localhost:http", "a b", "ev\x00il"],
)  # fmt: skip
def test_on_loopback_any_other_host_header_is_refused(host: str | None) -> None:
    assert not check().allows(host)


def test_a_listed_name_is_answered_with_loopback_and_nothing_else() -> None:
    hosts = check(host="0.0.0.0", allowed_hosts=["Console.Example.org"])  # noqa: S104  # under test
    assert hosts.allows("console.example.org")
    assert hosts.allows("console.example.org:443")
    assert hosts.allows("127.0.0.1:8765")  # the host's own proxy, by default
    assert not hosts.allows("example.org")
    assert not hosts.allows("evil.console.example.org")


def test_the_setting_reads_a_comma_separated_list_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACCORD_DESK__ALLOWED_HOSTS", "a.example, b.example")
    monkeypatch.setenv("ACCORD_CONSOLE__ALLOWED_HOSTS", '["a.example"]')
    settings = load_settings()
    assert settings.desk.allowed_hosts == ("a.example", "b.example")
    assert settings.console.allowed_hosts == ("a.example",)


def test_bound_to_one_address_that_address_is_answered_without_a_list() -> None:
    assert check(host="10.1.2.3").allows("10.1.2.3:8765")
    assert not check(host="10.1.2.3").allows("evil.example:8765")
    assert check(host="fd00::5").allows("[fd00::5]:8765")


@pytest.mark.parametrize("host", ["0.0.0.0", "::", ""])  # noqa: S104  # under test
def test_bound_to_every_address_without_a_list_it_refuses_to_start(host: str) -> None:
    with pytest.raises(ConfigError, match=f"^{SETTING} is not set"):
        check(host=host)


def test_a_star_answers_any_name_as_said() -> None:
    assert check(host="0.0.0.0", allowed_hosts=["*"]).allows("anything.example")  # noqa: S104


@pytest.mark.parametrize("entry", ["https://console.example", "console.example:443", "a b"])
def test_a_list_entry_that_is_no_name_is_one_line_naming_the_setting(entry: str) -> None:
    with pytest.raises(ConfigError, match=f"^{SETTING}: "):
        check(allowed_hosts=[entry])


def test_host_names_are_read_without_their_port() -> None:
    assert host_name("Console.Example:8765") == "console.example"
    assert host_name("[::1]:8765") == "[::1]"
    assert host_name("[0:0::1]") == "[::1]"
    assert host_name("::1") is None  # an IPv6 Host must be bracketed


def test_a_refused_host_is_logged_only_if_it_is_a_short_plain_name() -> None:
    assert printable_host("evil.example:80") == "evil.example:80"
    assert printable_host("x" * 101) == "unprintable"
    assert printable_host("a\nforged=log line") == "unprintable"
    assert printable_host(None) == "unprintable"
