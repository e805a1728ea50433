"""What Prometheus and Grafana need to watch Accord: alert rules, a dashboard, a scrape config.

The rules (``assets/alerts.yml``) and the dashboard (``assets/dashboard.json``) are package
files, shipped in the wheel and read with ``importlib.resources``, so ``accord deploy render``
writes the same bytes the tests check with Prometheus' own ``promtool``.

:func:`promql_metric_names` says which metrics a PromQL expression selects, and
:func:`exported_metric_names` which names a scrape of ``/metrics`` makes selectable: together
they let a test prove that every rule and panel queries something a process exports.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from importlib import resources
from typing import Any

import yaml

from broker.deploy._flag_alerts import flag_rules_text

__all__ = [
    "JOBS",
    "RULES_PATH",
    "SCRAPE_INTERVAL",
    "alert_rules_text",
    "dashboard_text",
    "exported_metric_names",
    "prometheus_config",
    "promql_metric_names",
    "shipped_expressions",
]

#: The scrape jobs the rules and the dashboard name.
JOBS = ("accord-worker", "accord-indexer", "accord-console")
#: Where the scrape config expects the rules file inside the Prometheus container.
RULES_PATH = "/etc/prometheus/alerts.yml"
SCRAPE_INTERVAL = "15s"


def _asset(name: str) -> str:
    return (resources.files("broker.deploy") / "assets" / name).read_text(encoding="utf-8")


def alert_rules_text(flag_parties: Sequence[str] = ()) -> str:
    """The Prometheus rule file (YAML), as shipped, with the flag services' rules of
    ``flag_parties`` (the co-ordinating teams whose flag service runs) appended
    (:mod:`._flag_alerts`)."""
    shipped = _asset("alerts.yml")
    if not shipped.endswith("\n"):
        shipped += "\n"
    return shipped + flag_rules_text(flag_parties)


def dashboard_text() -> str:
    """The Grafana dashboard (JSON; its datasource is the Prometheus of uid ``prometheus``)."""
    return _asset("dashboard.json")


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    out = []
    for panel in panels:
        out.append(panel)
        out += _panels(panel.get("panels", []))
    return out


def shipped_expressions(flag_parties: Sequence[str] = ()) -> dict[str, str]:
    """Every PromQL expression the shipped rules (with ``flag_parties``' flag services' rules)
    and dashboard evaluate, by where it is (``alert AccordWorkerDown``, ``panel 5 target B``;
    a rule named in more than one group as ``alert AccordFlagsAbsent 2``)."""
    out: dict[str, str] = {}
    for group in yaml.safe_load(alert_rules_text(flag_parties))["groups"]:
        for rule in group["rules"]:
            name = f"alert {rule['alert']}" if "alert" in rule else f"record {rule['record']}"
            n = 1
            while (f"{name} {n}" if n > 1 else name) in out:
                n += 1
            out[f"{name} {n}" if n > 1 else name] = str(rule["expr"])
    for panel in _panels(json.loads(dashboard_text())["panels"]):
        for target in panel.get("targets", []):
            out[f"panel {panel['id']} target {target['refId']}"] = str(target["expr"])
    return out


_TARGET = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):[0-9]{1,5}$")
_JOB = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def prometheus_config(targets: dict[str, list[str]]) -> dict[str, Any]:
    """A ``prometheus.yml`` (as a dict): each job scrapes its ``host:port`` targets' ``/metrics``
    every 15 s, and the rules are read from :data:`RULES_PATH`."""
    scrapes = []
    for job, hosts in targets.items():
        if not _JOB.match(job):
            raise ValueError(f"not a Prometheus job name: {job!r}")
        if bad := [h for h in hosts if not _TARGET.match(h)]:
            raise ValueError(f"not a host:port scrape target: {bad[0]!r}")
        scrapes.append(
            {"job_name": job, "metrics_path": "/metrics",
             "static_configs": [{"targets": list(hosts)}]}
        )  # fmt: skip
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": [RULES_PATH],
        "scrape_configs": scrapes,
    }


# -- which metrics a PromQL expression selects ------------------------------------------

#: Words that are never metric names where they stand: binary and set operators, modifiers.
_KEYWORDS = frozenset({"and", "or", "unless", "atan2", "bool", "offset", "inf", "nan"})
#: Modifiers followed by a parenthesised list of label names (``group_left`` may stand alone).
_LABEL_LISTS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
#: Aggregations, which may take their ``by``/``without`` before their parenthesis.
_AGGREGATIONS = frozenset({
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
})  # fmt: skip
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
# Numbers (decimal, hex, exponent) and durations (``5m``, ``1h30m``, ``1.5``).
_NUMBER = re.compile(
    r"0[xX][0-9A-Fa-f]+|(?:[0-9]+(?:ms|[smhdwy]))+|(?:[0-9]*\.)?[0-9]+(?:[eE][-+]?[0-9]+)?"
)
_SPACE = re.compile(r"(?:\s+|#[^\n]*)*")  # blanks and comments


def _skip_space(expr: str, i: int) -> int:
    found = _SPACE.match(expr, i)
    return found.end() if found is not None else i


def _string_end(expr: str, i: int) -> int:
    """The index after the string literal starting at ``expr[i]`` (a quote or backtick)."""
    quote, j = expr[i], i + 1
    while j < len(expr):
        if expr[j] == "\\" and quote != "`":
            j += 2
            continue
        if expr[j] == quote:
            return j + 1
        j += 1
    raise ValueError("unterminated string in PromQL expression")


def _closing(expr: str, i: int, opening: str, closing: str) -> int:
    """The index after the bracket matching the one at ``expr[i]``, strings skipped."""
    depth, j = 0, i
    while j < len(expr):
        c = expr[j]
        if c in "\"'`":
            j = _string_end(expr, j)
            continue
        if c == opening:
            depth += 1
        elif c == closing:
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    raise ValueError(f"unbalanced {opening!r} in PromQL expression")


def _unquote(literal: str) -> str:
    return literal[1:-1] if literal[0] == "`" else re.sub(r"\\(.)", r"\1", literal[1:-1])


_MATCHER = re.compile(r"""\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!=|!~|=)\s*("|'|`)""")


def _names_in_braces(body: str) -> set[str]:
    """Metric names a ``{...}`` matcher list selects by itself: ``__name__="x"``, or a quoted
    name standing alone (``{"x", le="1"}``, Prometheus 3)."""
    out: set[str] = set()
    i = 0
    while i < len(body):
        c = body[i]
        if c in " \t\n,":
            i += 1
            continue
        if c in "\"'`":
            end = _string_end(body, i)
            out.add(_unquote(body[i:end]))
            i = end
            continue
        m = _MATCHER.match(body, i)
        if m is None:
            raise ValueError("unreadable label matcher in PromQL expression")
        end = _string_end(body, m.end() - 1)
        if m.group(1) == "__name__" and m.group(2) == "=":
            out.add(_unquote(body[m.end() - 1 : end]))
        i = end
    return out


def _identifier(expr: str, start: int, end: int) -> tuple[int, str | None]:
    """After the identifier ``expr[start:end]``: where reading goes on, and the metric name it
    is (None: a function, an aggregation, a keyword or a list of label names)."""
    word = expr[start:end]
    after = _skip_space(expr, end)
    calls = after < len(expr) and expr[after] == "("
    if word.lower() in _AGGREGATIONS and not calls:  # sum by (job) (…)
        modifier = _IDENT.match(expr, after)
        calls = modifier is not None and modifier.group().lower() in ("by", "without")
    if word.lower() in _LABEL_LISTS:
        return (_closing(expr, after, "(", ")") if calls else end), None
    if word.lower() in _KEYWORDS or calls:
        return end, None
    return end, word


def promql_metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects, exactly as written (``x_total``, ``x_bucket``).

    A small tokenizer, not a parser: strings, numbers and durations, ``[range]`` and
    ``{matchers}`` are skipped; an identifier followed by ``(`` is a function or an
    aggregation; ``by (…)``, ``on (…)`` and the like hold label names; the rest of the
    identifiers are metric names (``up`` included). Aggregations are known by name when
    their ``by``/``without`` comes first (``sum by (job) (…)``). ``__name__="x"`` in braces
    selects ``x``. Unbalanced brackets and unterminated strings raise ``ValueError``.
    """
    out: set[str] = set()
    i, depth = 0, 0
    while (i := _skip_space(expr, i)) < len(expr):
        c = expr[i]
        if c in "\"'`":
            i = _string_end(expr, i)
        elif c == "{":
            end = _closing(expr, i, "{", "}")
            out |= _names_in_braces(expr[i + 1 : end - 1])
            i = end
        elif c == "[":
            i = _closing(expr, i, "[", "]")
        elif (number := _NUMBER.match(expr, i)) is not None:
            i = number.end()
        elif (ident := _IDENT.match(expr, i)) is not None:
            i, name = _identifier(expr, i, ident.end())
            out |= {name} if name is not None else set()
        else:
            depth += {"(": 1, ")": -1}.get(c, 0)
            if depth < 0:
                raise ValueError("unbalanced ')' in PromQL expression")
            i += 1  # an operator, a parenthesis, a comma
    if depth:
        raise ValueError("unbalanced '(' in PromQL expression")
    return out


_TYPE_LINE = re.compile(r"^# TYPE ([A-Za-z_:][A-Za-z0-9_:]*) ([a-z]+)\s*$", re.MULTILINE)
_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)[{ ]", re.MULTILINE)
#: The series a metric family of each type is queried by, after its ``# TYPE`` name.
_SERIES = {
    "counter": ("_total",),  # text format 0.0.4 already names it x_total; OpenMetrics: x
    "histogram": ("_bucket", "_count", "_sum"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "summary": ("", "_count", "_sum"),
}


def exported_metric_names(exposition: str) -> set[str]:
    """The metric names a PromQL query can select from one scrape of ``exposition`` (the
    Prometheus text format): every sample's name, and each ``# TYPE`` line's series, so a
    metric that exists but has no sample yet (a labelled family before its first event)
    counts. A counter is ``x_total``; a histogram ``x_bucket``, ``x_count``, ``x_sum``."""
    out = set(_SAMPLE.findall(exposition))
    for name, kind in _TYPE_LINE.findall(exposition):
        suffixes = _SERIES.get(kind, ("",))
        if kind == "counter" and name.endswith("_total"):
            suffixes = ("",)
        out |= {name + s for s in suffixes}
    return out
