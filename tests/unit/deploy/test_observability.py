"""The alert rules and the dashboard: valid to Prometheus' own promtool, and querying only
metrics Accord's processes declare.

promtool comes from ``make promtool`` (Debian's prometheus package, unpacked into
``$ACCORD_HOME/bin``); without it these tests fail, naming that target, rather than skip.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from broker.config import KafkaSecurity, KafkaSettings, default_home
from broker.console._metrics import ConsoleMetrics
from broker.deploy._observability import (
    JOBS,
    RULES_PATH,
    alert_rules_text,
    dashboard_text,
    exported_metric_names,
    prometheus_config,
    promql_metric_names,
    shipped_expressions,
)
from broker.desk._ingest_held import DeliveriesHeld
from broker.desk._probes import KafkaContact
from broker.gateway import GatewayMetrics
from broker.governance._metrics import IndexMetrics
from broker.ops._tls import TlsExpiry
from broker.pipeline._metrics import Metrics


@pytest.fixture(scope="module")
def promtool() -> str:
    own = default_home() / "bin" / "promtool"
    found = str(own) if own.is_file() else shutil.which("promtool")
    if found is None:
        pytest.fail(f"promtool is neither at {own} nor on PATH: run `make promtool`")
    return found


def _check(promtool: str, *args: str) -> str:
    done = subprocess.run(  # Prometheus' own checker, on files this test wrote
        [promtool, "check", *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(alert_rules_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(dashboard_text())
    return dashboard


# -- the rules --------------------------------------------------------------------------------


def test_the_rules_pass_promtool(promtool: str, tmp_path: Path) -> None:
    path = tmp_path / "alerts.yml"
    path.write_text(alert_rules_text())
    out = _check(promtool, "rules", str(path))
    assert f"SUCCESS: {len(_rules())} rules found" in out


def test_every_rule_says_how_bad_and_what_happened() -> None:
    names = [rule["alert"] for rule in _rules()]
    assert len(names) == len(set(names))
    for rule in _rules():
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert set(rule["annotations"]) == {"summary", "description"}, rule["alert"]


#: The only labels the rules' templates may name: roles and codes, never a person, a chain,
#: a sequence number or an address.
_TEMPLATE_LABELS = {"job", "topic", "reason", "certificate", "sender", "recipient", "outcome",
                    "school", "kind"}  # fmt: skip


def test_the_templates_name_only_parties_reasons_and_roles() -> None:
    for rule in _rules():
        for text in rule["annotations"].values():
            used = set(re.findall(r"\$labels\.([A-Za-z_]+)", text))
            assert used <= _TEMPLATE_LABELS, (rule["alert"], used)
            assert "instance" not in text, rule["alert"]


def test_the_rules_cover_what_the_runbook_promises() -> None:
    exprs = {rule["alert"]: rule["expr"] for rule in _rules()}
    assert exprs["AccordWorkerDown"].strip() == 'up{job="accord-worker"} == 0'
    wanted = {
        "accord_consumer_lag", "accord_transactions_total", "accord_quarantined_total",
        "accord_audit_chains_broken", "accord_audit_unsigned_oldest_seconds",
        "accord_audit_index_lag", "accord_audit_last_indexed_timestamp_seconds",
        "accord_audit_overrides_overdue", "accord_console_audit_writes_total",
        "accord_audit_encompass_overdue",
        "accord_console_sign_ins_total", "accord_tls_certificate_expiry_timestamp_seconds",
        "accord_desk_kafka_contact_timestamp_seconds", "accord_desk_deliveries_held",
        "accord_desk_deliveries_parked", "accord_state_entries_refused_total",
        "accord_gateway_auth_limited_total",
    }  # fmt: skip
    queried = set().union(*(promql_metric_names(e) for e in exprs.values()))
    assert wanted <= queried
    assert 'outcome="unauthorised"' in exprs["AccordGatewayUnauthorised"]
    quarantine = " ".join(e for e in exprs.values() if "accord_quarantined_total" in e)
    for reason in ("bad-signature", "key-rejected", "tampered", "dek-unopenable"):
        assert reason in quarantine
    tls = [e for e in exprs.values() if "accord_tls_certificate" in e]
    assert any("21 * 86400" in e for e in tls)
    assert any("7 * 86400" in e for e in tls)
    for job in JOBS:
        assert job in alert_rules_text()


# -- the dashboard ----------------------------------------------------------------------------


def _all_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [q for p in panels for q in (p, *_all_panels(p.get("panels", [])))]


def test_the_dashboard_is_one_grafana_dashboard_with_unique_panels() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"]
    assert dashboard["title"]
    assert 36 <= dashboard["schemaVersion"] <= 41
    panels = _all_panels(dashboard["panels"])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    assert "DS_PROMETHEUS" not in dashboard_text()
    assert "__inputs" not in dashboard
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}, panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "prometheus", panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]


def test_the_dashboard_shows_what_operators_asked_for() -> None:
    panels = [p for p in _all_panels(_dashboard()["panels"]) if p["type"] != "row"]
    exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
    for needed in (
        "accord_decisions_total", "accord_events_received_total", "accord_quarantined_total",
        "histogram_quantile(0.5,", "histogram_quantile(0.99,",
        "accord_pipeline_latency_seconds_bucket", "accord_pipeline_wait_seconds_bucket",
        "accord_transaction_seconds_bucket", "accord_consumer_lag",
        "accord_transactions_total", "accord_audit_indexed_records_total",
        "accord_audit_refused_total", "accord_audit_index_lag", "accord_audit_chains_broken",
        "accord_audit_unsigned_oldest_seconds", "accord_audit_overrides_overdue",
        "accord_console_sign_ins_total", "accord_console_lookups_total",
        "accord_tls_certificate_expiry_timestamp_seconds", "up{",
        "accord_audit_encompass_overdue", "accord_audit_encompass_late_total",
    ):  # fmt: skip
        assert needed in exprs, needed


def test_every_dashboard_query_parses_by_promtool(promtool: str, tmp_path: Path) -> None:
    """promtool has no expression checker of its own: each query becomes a recording rule."""
    exprs = {k: v for k, v in shipped_expressions().items() if k.startswith("panel ")}
    rules = [
        {"record": "accord:dashboard:" + re.sub(r"\W+", "_", where), "expr": expr}
        for where, expr in exprs.items()
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert f"SUCCESS: {len(rules)} rules found" in _check(promtool, "rules", str(path))


def test_promtool_would_catch_a_broken_query(promtool: str, tmp_path: Path) -> None:
    path = tmp_path / "broken.yml"
    rule = {"record": "accord:broken", "expr": "sum by (job (accord_consumer_lag)"}
    path.write_text(yaml.safe_dump({"groups": [{"name": "broken", "rules": [rule]}]}))
    done = subprocess.run(  # the same checker, on a file this test wrote
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode != 0


# -- every query names a metric some process declares ----------------------------------------


def test_every_metric_queried_is_declared_by_a_process() -> None:
    """The unit-level version of the end-to-end check: every family the worker, the indexer,
    the console, a desk's or flag service's and a gateway's ops server register (the TLS
    gauge in each), scraped as text, must cover what the rules and the dashboard select.
    ``up`` is Prometheus' own."""
    registries = [CollectorRegistry() for _ in range(5)]
    Metrics(registries[0])
    IndexMetrics(registries[1])
    ConsoleMetrics(registries[2])
    KafkaContact(registries[3], lambda: None)  # type: ignore[arg-type,return-value]  # never asked
    DeliveriesHeld(registries[3])
    GatewayMetrics(registries[4])
    plain = KafkaSettings(security_protocol=KafkaSecurity.PLAINTEXT)
    for registry in registries:
        TlsExpiry(registry, plain)
    exported = set().union(*(exported_metric_names(generate_latest(r).decode())
                             for r in registries))  # fmt: skip
    for where, expr in shipped_expressions().items():
        missing = promql_metric_names(expr) - exported - {"up"}
        assert not missing, f"{where} queries {sorted(missing)}, which nothing exports"


# -- promql_metric_names ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('up{job="accord-worker"} == 0', {"up"}),
        ("accord_consumer_lag", {"accord_consumer_lag"}),
        ('sum by (job, topic) (rate(accord_x_total{reason=~"a|b"}[5m]))', {"accord_x_total"}),
        ("sum(rate(accord_x_total[5m])) by (le)", {"accord_x_total"}),
        ("SUM BY (le) (accord_y)", {"accord_y"}),
        ("count without (instance) (accord_y)", {"accord_y"}),
        (
            "histogram_quantile(0.99, sum by (le) (rate(accord_h_seconds_bucket[5m])))",
            {"accord_h_seconds_bucket"},
        ),
        ("a / on (job) group_left (topic) b", {"a", "b"}),
        ("a and ignoring(x) b unless c or d", {"a", "b", "c", "d"}),
        ("a > bool 3", {"a"}),
        ("a offset 1h30m", {"a"}),
        ("rate(a[5m:30s] @ start())", {"a"}),
        ("min by (certificate) (accord_tls - time()) < 21 * 86400", {"accord_tls"}),
        ('absent(up{job="x"})', {"up"}),
        ('label_replace(a, "dst", "$1", "src", "(by)")', {"a"}),
        ('count_values("version", a)', {"a"}),
        ('{__name__="accord_z", job="w"}', {"accord_z"}),
        ('{"accord.dotted", le="1"}', {"accord.dotted"}),
        ('{__name__=~"accord_.*"}', set()),
        ("job:accord_lag:max5m", {"job:accord_lag:max5m"}),
        ("a # a comment naming b\n + c", {"a", "c"}),
        ("1e3 * Inf + NaN - 0x1F", set()),
        ('a{label="with } brace and \\" quote"} + b', {"a", "b"}),
        ("topk(3, a) + quantile(0.5, b)", {"a", "b"}),
    ],
)
def test_promql_metric_names(expr: str, names: set[str]) -> None:
    assert promql_metric_names(expr) == names


@pytest.mark.parametrize("expr", ['a{x="unterminated}', "sum(a", "a)", "a[5m", "a{x}"])
def test_promql_metric_names_refuses_what_it_cannot_read(expr: str) -> None:
    with pytest.raises(ValueError, match="PromQL"):
        promql_metric_names(expr)


def test_exported_names_follow_each_type_as_prometheus_client_writes_it() -> None:
    text = (
        "# HELP accord_a_total c\n# TYPE accord_a_total counter\n"
        "# HELP accord_h_seconds h\n# TYPE accord_h_seconds histogram\n"
        'accord_h_seconds_bucket{le="+Inf"} 0.0\n'
        "# TYPE accord_g gauge\n"
        "# TYPE accord_om counter\n"  # OpenMetrics names a counter without _total
        "# TYPE accord_s summary\n"
        "accord_sampled 1.0\n"
    )
    names = exported_metric_names(text)
    assert {"accord_a_total", "accord_g", "accord_om_total", "accord_sampled"} <= names
    assert {"accord_h_seconds_bucket", "accord_h_seconds_count", "accord_h_seconds_sum"} <= names
    assert {"accord_s", "accord_s_count", "accord_s_sum"} <= names
    # Careful, not generous: a gauge has no _total, a counter no _bucket.
    assert not {"accord_g_total", "accord_a_total_total", "accord_a_total_bucket"} & names


# -- the scrape config ------------------------------------------------------------------------


def test_the_scrape_config_is_one_promtool_accepts(promtool: str, tmp_path: Path) -> None:
    config = prometheus_config({
        "accord-worker": ["worker:9464"],
        "accord-indexer": ["indexer:9465"],
        "accord-console": ["console:9466", "[::1]:9466"],
    })  # fmt: skip
    assert config["global"]["scrape_interval"] == "15s"
    assert config["rule_files"] == [RULES_PATH] == ["/etc/prometheus/alerts.yml"]
    jobs = {s["job_name"]: s["static_configs"][0]["targets"] for s in config["scrape_configs"]}
    assert jobs["accord-console"] == ["console:9466", "[::1]:9466"]
    # promtool reads the rule files a config names: point it at a copy of ours.
    (tmp_path / "alerts.yml").write_text(alert_rules_text())
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump({**config, "rule_files": [str(tmp_path / "alerts.yml")]}))
    _check(promtool, "config", str(path))


@pytest.mark.parametrize(
    "targets",
    [{"accord worker": ["w:1"]}, {"accord-worker": ["w"]}, {"accord-worker": ["http://w:1"]}],
)
def test_the_scrape_config_refuses_what_prometheus_would(targets: dict[str, list[str]]) -> None:
    with pytest.raises(ValueError, match="not a"):
        prometheus_config(targets)


def test_the_rendered_compose_prometheus_config_passes_promtool(
    promtool: str, tmp_path: Path
) -> None:
    """The scrape jobs the rules name, each on its process's ops port, checked by
    Prometheus' own ``promtool check config`` (rules path moved to where the file is)."""
    from broker.deploy import Target, deployment, render_files, write_render
    from broker.policy import load_bundle

    bundle = Path(__file__).resolve().parents[3] / "policies"
    dep = deployment(load_bundle(bundle), bundle, brokers=1, partitions=1, image="a:1")
    files, _ = render_files(dep, Target.COMPOSE, tmp_path / "out")
    write_render(tmp_path / "out", files)
    config = yaml.safe_load(files["prometheus/prometheus.yml"])
    assert {j["job_name"]: j["static_configs"][0]["targets"] for j in config["scrape_configs"]} == {
        "accord-worker": ["worker:9464"],
        "accord-indexer": ["indexer:9465"],
        "accord-console": ["console:9466"],
    }
    config["rule_files"] = [str(tmp_path / "out" / "prometheus" / "alerts.yml")]
    local = tmp_path / "prometheus.yml"
    local.write_text(yaml.safe_dump(config))
    out = _check(promtool, "config", str(local))
    assert "SUCCESS" in out
