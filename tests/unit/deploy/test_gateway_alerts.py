"""The gateways' alerts, run by promtool over made-up series: the 401s alone alert, not only
the 429s that follow them; a consent record refused alerts, an event refused does not."""

from __future__ import annotations

from pathlib import Path

from tests.unit.deploy.promtool_rules import fires
from tests.unit.deploy.test_observability import promtool

__all__ = ["promtool"]  # the fixture, shared with test_observability

_JOB = "accord-gateway-wmp"


def _series(outcome: str, values: str, endpoint: str = "event") -> dict[str, str]:
    labels = f'job="{_JOB}",endpoint="{endpoint}",outcome="{outcome}"'
    return {"series": f"accord_gateway_requests_total{{{labels}}}", "values": values}


def _check(promtool: str, tmp_path: Path, name: str, series: list[dict[str, str]],
           value: str | None) -> None:  # fmt: skip
    """That alert ``name`` fires at 20 minutes of ``series`` with ``value`` (or, None, not)."""
    firing = {_JOB: value} if value is not None else {}
    fires(promtool, tmp_path, name, series, firing, job=_JOB, at="20m")


def _check_alert(promtool: str, tmp_path: Path, per_minute: float, *, fires: bool) -> None:
    """That AccordGatewayUnauthorised fires (or not) at 20 minutes of ``per_minute`` 401s,
    and no 429 (the guesser keeps under the limits)."""
    value = f"{per_minute * 10:g}" if fires else None
    series = [_series("unauthorised", f"0+{per_minute}x30")]
    _check(promtool, tmp_path, "AccordGatewayUnauthorised", series, value)


def test_wrong_tokens_under_the_429_limits_alert(promtool: str, tmp_path: Path) -> None:
    """Two a minute, from addresses each under its own limit: no 429, yet an alert."""
    _check_alert(promtool, tmp_path, 2, fires=True)


def test_a_stray_wrong_token_now_and_then_does_not(promtool: str, tmp_path: Path) -> None:
    _check_alert(promtool, tmp_path, 0.5, fires=False)


def test_one_consent_record_refused_alerts(promtool: str, tmp_path: Path) -> None:
    """Expected for a party that is not a consent authority, a fault for one: told either way."""
    series = [_series("refused", "0x10 1x20", endpoint="consent")]
    _check(promtool, tmp_path, "AccordGatewayConsentRefused", series, "1")


def test_an_event_refused_is_not_a_consent_alert(promtool: str, tmp_path: Path) -> None:
    series = [_series("refused", "0x10 1x20", endpoint="event")]
    _check(promtool, tmp_path, "AccordGatewayConsentRefused", series, None)


def test_an_event_kafka_refused_the_gateways_login_alerts(promtool: str, tmp_path: Path) -> None:
    """Events wait at the records systems until the grant is back: someone must put it back."""
    series = [_series("kafka_refused", "0x10 1x20", endpoint="event")]
    _check(promtool, tmp_path, "AccordGatewayWriteRefused", series, "1")


def test_a_gateway_whose_writes_go_through_has_no_write_refused_alert(
    promtool: str, tmp_path: Path
) -> None:
    series = [_series("accepted", "0+5x30", endpoint="event")]
    _check(promtool, tmp_path, "AccordGatewayWriteRefused", series, None)


def _held(values: str) -> list[dict[str, str]]:
    return [{"series": f'accord_gateway_ingress_refused{{job="{_JOB}"}}', "values": values}]


def test_a_gateway_held_unready_after_a_refused_write_for_15_minutes_alerts(
    promtool: str, tmp_path: Path
) -> None:
    """Behind a platform that sends nothing to it, no write tells it the grant is back."""
    _check(promtool, tmp_path, "AccordGatewayIngressRefused", _held("0x2 1x25"), "1")


def test_a_gateway_that_comes_back_ready_has_no_ingress_refused_alert(
    promtool: str, tmp_path: Path
) -> None:
    _check(promtool, tmp_path, "AccordGatewayIngressRefused", _held("0x2 1x12 0x15"), None)


def test_a_gateway_held_unready_under_15_minutes_has_no_ingress_refused_alert(
    promtool: str, tmp_path: Path
) -> None:
    """One back-off or a few (60 s, 120 s, ...) is the gateway mending itself: not paged."""
    _check(promtool, tmp_path, "AccordGatewayIngressRefused", _held("0x8 1x20"), None)
