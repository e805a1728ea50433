"""The alerts on consent records the worker refused (a misspelt purpose or recipient, a
recorder without authority) or filed with words ignored, run by promtool: the first of a
reason alerts, though its series begins above 0; refusals long stopped do not."""

from __future__ import annotations

from pathlib import Path

from tests.unit.deploy.promtool_rules import fires
from tests.unit.deploy.test_observability import promtool

__all__ = ["promtool"]  # the fixture, shared with test_observability

_JOB = "accord-worker"
_ALERT = "AccordConsentRefused"


def _refused(reason: str, values: str) -> dict[str, str]:
    labels = f'job="{_JOB}",reason="{reason}"'
    return {"series": f"accord_consent_refused_total{{{labels}}}", "values": values}


def test_the_first_consent_refused_for_a_misspelt_purpose_alerts(
    promtool: str, tmp_path: Path
) -> None:
    """No zero series: the reason's series first appears at 1, at minute 35."""
    fires(promtool, tmp_path, _ALERT, [_refused("unknown-purpose", "_x35 1x5")],
          {"unknown-purpose": "1"}, job=_JOB, label="reason")  # fmt: skip


def test_refusals_that_stopped_do_not_alert(promtool: str, tmp_path: Path) -> None:
    fires(promtool, tmp_path, _ALERT, [_refused("outside-authority", "0x5 2x35")], {},
          job=_JOB, label="reason")  # fmt: skip


def test_a_withdrawal_filed_with_a_word_ignored_alerts(promtool: str, tmp_path: Path) -> None:
    """Part of a family's withdrawal named nothing the bundle knows: someone must ask."""
    labels = f'job="{_JOB}",reason="unknown-purpose"'
    series = [{"series": f"accord_consent_terms_ignored_total{{{labels}}}", "values": "_x35 1x5"}]
    fires(promtool, tmp_path, "AccordConsentTermsIgnored", series, {"unknown-purpose": "1"},
          job=_JOB, label="reason")  # fmt: skip
