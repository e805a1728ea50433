"""Settings mistakes refused at a web app's start in one line, exit 2, before it listens
(tests/unit/test_config_env_names.py has each case)."""

from __future__ import annotations

import pytest

from tests.unit.audit.conftest import Run


def test_a_desk_on_every_address_with_an_empty_allowed_hosts_does_not_start(
    run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCORD_DESK__ALLOWED_HOSTS", "")
    monkeypatch.setenv("ACCORD_DESK__TLS_TERMINATED_BY_PROXY", "true")
    code, _, err = run_cli(["desk", "--as", "cog-wednesbury", "--host", "0.0.0.0"])  # noqa: S104
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith("accord: error: ACCORD_DESK__ALLOWED_HOSTS: empty: ")


def test_a_gateway_with_both_does_not_start(run_cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCORD_GATEWAY__TLS_CERT", "/nonexistent/cert.pem")
    monkeypatch.setenv("ACCORD_GATEWAY__TLS_KEY", "/nonexistent/key.pem")
    monkeypatch.setenv("ACCORD_GATEWAY__TLS_TERMINATED_BY_PROXY", "true")
    code, _, err = run_cli(["gateway", "--as", "wmp"])
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith("accord: error: ACCORD_GATEWAY__TLS_TERMINATED_BY_PROXY: true while ")
