"""The Secrets a Kubernetes render needs that only the platform team makes, and the ones an
offboarding leaves behind: listed from the rendered manifests, so that an apply never stops
pods for a missing one, and an offboarded party's private keys are never forgotten in the
namespace. Also the names Strimzi must be able to use."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.deploy import (
    Deployment,
    Target,
    deployment,
    platform_secrets,
    removal_commands,
    render_files,
    write_render,
)
from broker.deploy._names import check_cluster
from broker.errors import UsageError
from broker.policy import load_bundle

POLICIES = Path("policies")
DOCS = Path("docs/deployment.md")
RANGES = ["192.0.2.0/24"]  # --kafka-source-range
TEAM, NEWCOMER = "sandwell-coord", "cog-great-bridge"
SERVICES = ("worker", "console", "indexer")


def _dep(bundle: Path = POLICIES, *desks: str) -> Deployment:
    return deployment(load_bundle(bundle), bundle, brokers=3, partitions=3,
                      image="accord-broker:test", desks=desks)  # fmt: skip


def _render(out: Path, dep: Deployment) -> tuple[dict[str, str], list[str]]:
    """Render into ``out`` as the CLI does: the deletes are read before the files go."""
    files, _ = render_files(dep, Target.KUBERNETES, out, kafka_source_ranges=RANGES)
    deletes = removal_commands(out, files, "accord")
    write_render(out, files, dep.kept())
    return files, deletes


def _with_newcomer(tmp_path: Path) -> Path:
    bundle = tmp_path / "policies"
    shutil.copytree(POLICIES, bundle)
    with (bundle / "parties.yaml").open("a", encoding="utf-8") as fh:
        fh.write(f"  {NEWCOMER}:\n    name: Great Bridge Community Operating Group\n"
                 "    kind: hub\n    localities: [\"DY4 7\"]\n")  # fmt: skip
    return bundle


def _mounted(files: dict[str, str]) -> dict[str, set[str]]:
    """Secret -> keys, over every rendered Deployment's volumes, read here independently."""
    found: dict[str, set[str]] = {}
    for rel, text in files.items():
        doc: dict[str, Any] = yaml.safe_load(text) if rel.endswith(".yaml") else {}
        if not isinstance(doc, dict) or doc.get("kind") != "Deployment":
            continue
        for volume in doc["spec"]["template"]["spec"]["volumes"]:
            refs = [volume["secret"]] if "secret" in volume else []
            for source in volume.get("projected", {}).get("sources", []):
                refs += [{"secretName": source["secret"]["name"], **source["secret"]}]
            for ref in refs:
                keys = found.setdefault(ref["secretName"], set())
                keys.update(item["key"] for item in ref["items"])
    return found


def test_the_platforms_secrets_are_every_keystore_and_passphrase_per_pod_and_the_audit_db(
    tmp_path: Path,
) -> None:
    """What an apply needs and nothing makes: missing one, a pod waits in ContainerCreating,
    and as the workers are replaced all together the pipeline stops."""
    files, _ = render_files(
        _dep(POLICIES, TEAM), Target.KUBERNETES, tmp_path / "k", kafka_source_ranges=RANGES
    )
    expected = {"accord-audit-db": ("url",)}
    for principal in (*SERVICES, TEAM):
        expected[f"accord-keystore-{principal}"] = ("keystore.tar",)
        expected[f"accord-keystore-{principal}-passphrase"] = ("passphrase",)
    assert platform_secrets(files) == dict(sorted(expected.items()))
    # Every other Secret a pod mounts is Strimzi's: a KafkaUser's, or the cluster CA's.
    users = {yaml.safe_load(t)["metadata"]["name"] for r, t in files.items()
             if r.startswith("kafka/users/")}  # fmt: skip
    strimzi = set(_mounted(files)) - set(expected)
    assert strimzi == {TEAM, *SERVICES, "accord-cluster-ca-cert"}
    assert strimzi - {"accord-cluster-ca-cert"} <= users


def test_an_offboarded_partys_keystore_secrets_are_deleted_last_after_archiving(
    tmp_path: Path,
) -> None:
    """The platform team made them, so no render or operator would ever delete them, and
    they hold the party's private keys."""
    bundle, out = _with_newcomer(tmp_path), tmp_path / "k"
    _render(out, _dep(bundle, NEWCOMER))
    _, deletes = _render(out, _dep(POLICIES))
    assert deletes[0].startswith(f"kubectl -n accord delete kafkauser {NEWCOMER}   #")
    keystore, passphrase = deletes[-2:]
    assert keystore.startswith(
        f"kubectl -n accord delete secret accord-keystore-{NEWCOMER} --ignore-not-found   # "
    )
    assert "archive the keystore off-cluster first" in keystore
    assert passphrase.startswith(
        f"kubectl -n accord delete secret accord-keystore-{NEWCOMER}-passphrase "
        "--ignore-not-found   # "
    )
    assert sum(" delete secret " in line for line in deletes) == 2  # no service's, no other


def test_a_party_offboarded_without_a_desk_here_is_told_of_its_keystore_secrets_too(
    tmp_path: Path,
) -> None:
    bundle, out = _with_newcomer(tmp_path), tmp_path / "k"
    _render(out, _dep(bundle))
    _, deletes = _render(out, _dep(POLICIES))
    secrets = [line.split("   #")[0] for line in deletes if " delete secret " in line]
    assert secrets == [
        f"kubectl -n accord delete secret accord-keystore-{NEWCOMER} --ignore-not-found",
        f"kubectl -n accord delete secret accord-keystore-{NEWCOMER}-passphrase --ignore-not-found",
    ]


def test_a_dropped_desks_keystore_secrets_are_deleted_though_the_party_keeps_its_login(
    tmp_path: Path,
) -> None:
    out = tmp_path / "k"
    _render(out, _dep(POLICIES, TEAM))
    _, deletes = _render(out, _dep(POLICIES))
    assert not any("delete kafkauser" in line for line in deletes)
    assert [line.split("   #")[0] for line in deletes[-2:]] == [
        f"kubectl -n accord delete secret accord-keystore-{TEAM} --ignore-not-found",
        f"kubectl -n accord delete secret accord-keystore-{TEAM}-passphrase --ignore-not-found",
    ]
    # The party's Kafka password is Strimzi's, deleted with its KafkaUser if ever: not here.
    assert not any(line.endswith(f"delete secret {TEAM}") for line in deletes)
    _, again = _render(out, _dep(POLICIES))
    assert again == []


def test_a_delivery_topics_delete_says_what_the_recipient_has_not_read_is_lost(
    tmp_path: Path,
) -> None:
    """Its login is deleted first, so it can read nothing more: the lag was to be 0 before."""
    bundle, out = _with_newcomer(tmp_path), tmp_path / "k"
    _render(out, _dep(bundle))
    _, deletes = _render(out, _dep(POLICIES))
    (line,) = [d for d in deletes if f"kafkatopic accord.deliver.{NEWCOMER}" in d]
    assert "any the recipient has not read are lost" in line
    assert "once the recipient has read them" not in line


@pytest.mark.parametrize("cluster", ["9accord", "0", "-accord", "accord-", "Accord", "a" * 39])
def test_a_cluster_name_strimzi_cannot_name_a_service_after_is_refused(cluster: str) -> None:
    with pytest.raises(UsageError, match=r"^--cluster .*DNS-1035 label of at most 38 ") as e:
        check_cluster(cluster)
    assert "\n" not in str(e.value)


def test_the_longest_cluster_name_allowed_fits_every_service_strimzi_names_after_it(
    tmp_path: Path,
) -> None:
    """Strimzi names a Service <cluster>-kafka-<listener>-bootstrap for an external listener
    (<cluster>-kafka-bootstrap for the internal ones), and a Service's name is at most 63."""
    cluster = "a" * 38
    check_cluster(cluster)
    check_cluster("a9-b")
    files, _ = render_files(
        _dep(), Target.KUBERNETES, tmp_path / "k", cluster=cluster, kafka_source_ranges=RANGES
    )
    kafka = yaml.safe_load(files["kafka/kafka.yaml"])
    services = [f"{cluster}-kafka-bootstrap", f"{cluster}-kafka-brokers"]
    services += [f"{cluster}-kafka-{listener['name']}-bootstrap"
                 for listener in kafka["spec"]["kafka"]["listeners"]
                 if listener["type"] != "internal"]  # fmt: skip
    assert f"{cluster}-kafka-external-bootstrap" in services
    assert max(len(s) for s in services) == 63
    assert all(re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", s) for s in services)


def test_the_docs_give_the_cluster_names_limit_the_code_enforces() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert "at most 38 characters" in text
    assert "47" not in text.split("## The image")[0]


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    return text[start : text.index("\n## ", start + 1)]


@pytest.mark.parametrize(
    "heading", ["## Upgrading Accord without losing exactly-once", "### From an Accord before"]
)
def test_each_upgrade_section_first_makes_the_passphrase_secrets_the_render_mounts(
    heading: str,
) -> None:
    """Its first step, with the command: applied without them every worker, the console and
    every desk stop. The Secret's name and key are the ones the render mounts."""
    section = _section(DOCS.read_text(encoding="utf-8"), heading)
    first = section[section.index("\n1. ") : section.index("\n2. ")]
    assert "accord-keystore-<principal>-passphrase" in first
    assert "--desk" in first  # each desk's party too
    assert (
        "kubectl -n accord create secret generic accord-keystore-$p-passphrase \\\n"
        "        --from-file=passphrase=$p.passphrase"
    ) in first
    assert "-o jsonpath='{.data.passphrase}'" in first  # split out of the existing Secret
