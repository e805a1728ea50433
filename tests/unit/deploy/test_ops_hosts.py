"""What a rendered deployment scrapes and probes the ops servers by is a ``Host`` they answer
to (``broker.ops._hosts``: an address or ``localhost`` with no setting, a name only when
listed; names a DNS-rebinding page could send are refused)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.config import OpsEndpoint, load_settings
from broker.deploy import Target, deployment, render_files
from broker.ops._hosts import OpsHosts
from broker.policy import load_bundle

POLICIES = Path("policies")
DESKS = ("sandwell-coord", "cog-tipton")
ANSWERED = OpsHosts()
#: A pod's address and port: what the kubelet and Kubernetes discovery reach a pod by.
POD = "10.244.1.7:9464"


def _render(target: Target, out: Path, **options: str) -> dict[str, Any]:
    dep = deployment(load_bundle(POLICIES), POLICIES, brokers=3, partitions=3,
                     image="accord-broker:test", desks=DESKS)  # fmt: skip
    files, _ = render_files(dep, target, out, **options)
    return {
        rel: yaml.safe_load(text) for rel, text in files.items() if rel.endswith((".yaml", ".yml"))
    }


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _render(Target.COMPOSE, tmp_path_factory.mktemp("compose"),
                   external_host="kafka.example.org")  # fmt: skip


@pytest.fixture(scope="module")
def kubernetes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _render(Target.KUBERNETES, tmp_path_factory.mktemp("k8s"), namespace="partners",
                   kafka_source_ranges=["192.0.2.0/24"])  # fmt: skip


def _rendered_ops_endpoint(service: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> OpsEndpoint:
    """The ops settings a rendered service's process reads from its own environment."""
    env = service["environment"]
    (port_var,) = [k for k in env if k.endswith("__METRICS_PORT")]
    section = port_var.removeprefix("ACCORD_").removesuffix("__METRICS_PORT")
    for name, value in env.items():
        if name.startswith(f"ACCORD_{section}__METRICS_"):
            monkeypatch.setenv(name, value)
    endpoint = getattr(load_settings(), section.lower())
    assert isinstance(endpoint, OpsEndpoint)
    return endpoint


def test_compose_prometheus_scrapes_every_process_by_the_name_its_render_lists(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prometheus scrapes ``<service>:<port>``; the service's own environment lists that name
    (refused with no setting, as a single-label name others on the network can answer)."""
    services = compose["compose.yaml"]["services"]
    targets = [t for job in compose["prometheus/prometheus.yml"]["scrape_configs"]
               for group in job["static_configs"] for t in group["targets"]]  # fmt: skip
    assert len(targets) == 6  # worker, indexer, console, two desks, a flag service
    for target in targets:
        name, _, port = target.partition(":")
        with monkeypatch.context() as scoped:
            endpoint = _rendered_ops_endpoint(services[name], scoped)
        assert endpoint.metrics_port == int(port), target
        assert OpsHosts.of(endpoint).allows(target), target
        assert not ANSWERED.allows(target), target


def test_compose_health_checks_reach_every_ops_server_by_an_address(
    compose: dict[str, Any],
) -> None:
    checked = 0
    for name, service in compose["compose.yaml"]["services"].items():
        test = " ".join(service.get("healthcheck", {}).get("test", []))
        for host in re.findall(r"http://([^/']+)/(?:readyz|livez)", test):
            assert ANSWERED.allows(host), (name, host)
            checked += 1
    assert checked == 6


def test_kubernetes_probes_and_service_monitors_reach_pods_by_their_address(
    kubernetes: dict[str, Any],
) -> None:
    """The kubelet sends the pod's address as ``Host`` unless a probe names a host or a Host
    header; the Operator scrapes each endpoint's address unless a relabelling sets one."""
    probes = 0
    for rel, doc in kubernetes.items():
        if doc.get("kind") != "Deployment" or not rel.startswith("accord/"):
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
                get = container[kind]["httpGet"]
                assert "host" not in get, (rel, kind)
                assert all(h["name"].lower() != "host" for h in get.get("httpHeaders", []))
                probes += 1
    assert probes == 3 * 6
    monitors = [d for rel, d in kubernetes.items() if rel.startswith("monitoring/service-monitor")]
    assert len(monitors) == 6
    for monitor in monitors:
        for endpoint in monitor["spec"]["endpoints"]:
            assert all(r.get("targetLabel") != "__address__" for r in endpoint["relabelings"])
    assert ANSWERED.allows(POD)


def test_the_documented_annotation_scrape_config_scrapes_pods_by_their_address() -> None:
    text = Path("docs/deployment.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n( *- job_name: accord-kubernetes\n.*?)```", text, re.S)
    assert block is not None
    (config,) = yaml.safe_load(textwrap.dedent(block.group(1)))
    assert [c["role"] for c in config["kubernetes_sd_configs"]] == ["endpoints"]
    assert all(r.get("target_label") != "__address__" for r in config["relabel_configs"])
    assert ANSWERED.allows(POD)
