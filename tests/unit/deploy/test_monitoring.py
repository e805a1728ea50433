"""Kubernetes' optional ``monitoring/``: the Prometheus Operator scrapes each process under
the job name the shipped rules and dashboard select, and loads the same rules."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.deploy import (
    Deployment,
    Target,
    alert_rules_text,
    deployment,
    prometheus_config,
    render_files,
    shipped_expressions,
)
from broker.policy import load_bundle

POLICIES = Path("policies")
DESKS = ("sandwell-coord", "cog-tipton")
GATEWAYS = ("wmp",)  # an agency's publishing gateway, scraped as the desks are
# Every job a shipped rule or panel selects: job="x" and job=~"x|y-.+".
_JOB_MATCHER = re.compile(r"""job\s*(=~|=)\s*"([^"]*)\"""")


@pytest.fixture(scope="module")
def dep() -> Deployment:
    return deployment(load_bundle(POLICIES), POLICIES, brokers=3, partitions=3,
                      image="accord-broker:test", desks=DESKS, gateways=GATEWAYS)  # fmt: skip


@pytest.fixture(scope="module")
def rendered(dep: Deployment, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("k8s")
    files, _ = render_files(
        dep, Target.KUBERNETES, out, namespace="partners", kafka_source_ranges=["192.0.2.0/24"]
    )
    return {rel: yaml.safe_load(text) for rel, text in files.items()}


def _jobs(rendered: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each ServiceMonitor's job, to the ops Service it selects."""
    services = [d for rel, d in rendered.items()
                if rel.startswith("accord/") and rel.endswith("/ops-service.yaml")]  # fmt: skip
    web = [d for rel, d in rendered.items() if rel.endswith("/service.yaml")]
    out = {}
    for rel, doc in rendered.items():
        if not rel.startswith("monitoring/service-monitor-"):
            continue
        assert doc["apiVersion"] == "monitoring.coreos.com/v1"
        selector = doc["spec"]["selector"]["matchLabels"]
        (endpoint,) = doc["spec"]["endpoints"]
        (relabel,) = endpoint["relabelings"]
        assert (relabel["action"], relabel["targetLabel"]) == ("replace", "job")
        assert (endpoint["port"], endpoint["path"]) == ("ops", "/metrics")
        (selected,) = [s for s in services if selector.items() <= s["metadata"]["labels"].items()]
        assert not [s for s in web if selector.items() <= s["metadata"]["labels"].items()]
        assert "ops" in {p["name"] for p in selected["spec"]["ports"]}
        out[relabel["replacement"]] = selected
    return out


def test_each_ops_service_is_scraped_under_the_job_name_compose_gives_the_process(
    dep: Deployment, rendered: dict[str, Any]
) -> None:
    compose = {c["job_name"] for c in prometheus_config(
        {f"accord-{p.name}": [f"{p.name}:{p.ops_port}"] for p in dep.processes}
    )["scrape_configs"]}  # fmt: skip
    jobs = _jobs(rendered)
    assert set(jobs) == compose
    assert {"accord-worker", "accord-indexer", "accord-console",
            "accord-desk-sandwell-coord", "accord-flags-sandwell-coord",
            "accord-gateway-wmp"} <= set(jobs)  # fmt: skip


def test_every_job_a_shipped_rule_or_panel_selects_is_one_a_service_monitor_sets(
    rendered: dict[str, Any],
) -> None:
    """On Kubernetes the rules matched nothing: the jobs were Compose's names only."""
    jobs = set(_jobs(rendered))
    matchers = {(op, value) for expr in shipped_expressions(["sandwell-coord"]).values()
                for op, value in _JOB_MATCHER.findall(expr)}  # fmt: skip
    assert matchers
    for op, value in matchers:
        if op == "=":
            assert value in jobs, value
        else:
            assert any(re.fullmatch(value, job) for job in jobs), value


def test_the_prometheus_rule_holds_the_shipped_groups(rendered: dict[str, Any]) -> None:
    """With the flag service's rules of the one team among the desks (cog-tipton is a hub)."""
    rule = rendered["monitoring/prometheus-rule.yaml"]
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    groups = yaml.safe_load(alert_rules_text(["sandwell-coord"]))["groups"]
    assert rule["spec"]["groups"] == groups
    assert groups != yaml.safe_load(alert_rules_text())["groups"]


def test_monitoring_has_its_own_kustomization_and_the_default_one_does_not_list_it(
    rendered: dict[str, Any],
) -> None:
    """Without the Operator's CRDs the API server would refuse the whole default apply."""
    default = rendered["kustomization.yaml"]
    assert not [r for r in default["resources"] if r.startswith("monitoring")]
    assert not [r for r in default["resources"] if "monitoring.coreos.com" in str(rendered[r])]
    own = rendered["monitoring/kustomization.yaml"]
    assert own["namespace"] == "partners"
    listed = {f"monitoring/{r}" for r in own["resources"]}
    assert listed == {rel for rel in rendered if rel.startswith("monitoring/")} - {
        "monitoring/kustomization.yaml"
    }
    # No ConfigMap claims to be a rule source the Operator loads.
    rules = rendered["accord/observability/alert-rules.yaml"]
    assert "prometheus_rule" not in rules["metadata"]["labels"]


def test_the_documented_annotation_scrape_config_sets_the_same_jobs(
    rendered: dict[str, Any],
) -> None:
    """docs/deployment.md's relabelling, for a Prometheus without the Operator."""
    text = Path("docs/deployment.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n( *- job_name: accord-kubernetes\n.*?)```", text, re.S)
    assert block is not None
    (config,) = yaml.safe_load(textwrap.dedent(block.group(1)))
    (role,) = config["kubernetes_sd_configs"]
    assert role["role"] == "endpoints"
    relabel = next(r for r in config["relabel_configs"] if r.get("target_label") == "job")
    assert relabel["source_labels"] == ["__meta_kubernetes_service_name"]
    jobs = _jobs(rendered)
    for job, service in jobs.items():
        name = service["metadata"]["name"]
        found = re.fullmatch(relabel["regex"], name)
        assert found is not None, name
        assert found.expand(relabel["replacement"].replace("$1", r"\1")) == job
        keep = [r for r in config["relabel_configs"] if r.get("action") == "keep"]
        for rule in keep:
            (label,) = rule["source_labels"]
            meta = {
                "__meta_kubernetes_service_annotation_prometheus_io_scrape":
                    service["metadata"]["annotations"]["prometheus.io/scrape"],
                "__meta_kubernetes_service_label_accord_ops":
                    service["metadata"]["labels"]["accord-ops"],
                "__meta_kubernetes_endpoint_port_name": service["spec"]["ports"][0]["name"],
            }[label]  # fmt: skip
            assert re.fullmatch(rule["regex"], meta), (name, label)
