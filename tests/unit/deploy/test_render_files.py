"""Rendering into a folder: what a later render must keep from the first is recorded beside
the files and a change refused, before anything is made or written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from broker.deploy import MANIFEST, Deployment, Target, deployment, render_files, write_render
from broker.errors import UsageError
from broker.policy import load_bundle
from broker.topics import AUDIT

POLICIES = Path("policies")
RANGES = ["192.0.2.0/24"]


def _dep(partitions: int, brokers: int = 1) -> Deployment:
    return deployment(load_bundle(POLICIES), POLICIES, brokers=brokers, partitions=partitions,
                      image="accord-broker:test")  # fmt: skip


def _render(out: Path, target: Target, partitions: int) -> list[str]:
    dep = _dep(partitions)
    # The parties' range is Kubernetes' alone (Compose's ports are the host firewall's).
    ranges = ["192.0.2.0/24"] if target is Target.KUBERNETES else []
    files, made = render_files(dep, target, out, kafka_source_ranges=ranges)
    write_render(out, files, dep.kept())
    return made


def _snapshot(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}


@pytest.mark.parametrize("target", list(Target))
def test_a_render_with_other_partitions_into_the_same_folder_is_refused_and_changes_nothing(
    tmp_path: Path, target: Target
) -> None:
    """Strimzi's topic operator would add partitions to accord.audit at the next apply, and
    an audit chain is placed by the partition count: its chains would read as broken."""
    out = tmp_path / "deploy"
    _render(out, target, 3)
    assert "# partitions 3\n" in (out / MANIFEST).read_text()
    before = _snapshot(out)
    with pytest.raises(UsageError, match=r"^--partitions 6: .* rendered with --partitions 3"):
        _render(out, target, 6)
    assert _snapshot(out) == before  # no file, no secret, no record changed
    assert _render(out, target, 3) == []  # the same count renders again


def test_the_refusal_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    _render(out, Target.KUBERNETES, 3)
    with pytest.raises(UsageError) as refused:
        _render(out, Target.KUBERNETES, 4)
    assert "\n" not in str(refused.value)
    # A new folder alone is no way out: applied to the same cluster, Strimzi would still add
    # the partitions.
    assert "a new deployment (a new namespace and cluster) into a new --out folder" in str(
        refused.value
    )


def test_a_folder_rendered_before_the_count_was_recorded_is_read_from_its_audit_topic(
    tmp_path: Path,
) -> None:
    out = tmp_path / "deploy"
    _render(out, Target.KUBERNETES, 3)
    manifest = out / MANIFEST
    manifest.write_text("".join(ln for ln in manifest.read_text().splitlines(True)
                                if not ln.startswith("#")))  # fmt: skip
    topic = yaml.safe_load((out / "kafka" / "topics" / f"{AUDIT}.yaml").read_text())
    assert topic["spec"]["partitions"] == 3
    with pytest.raises(UsageError, match="rendered with --partitions 3"):
        _render(out, Target.KUBERNETES, 5)


def test_a_compose_folder_rendered_before_the_count_was_recorded_is_read_from_compose_yaml(
    tmp_path: Path,
) -> None:
    out = tmp_path / "deploy"
    _render(out, Target.COMPOSE, 2)
    (out / MANIFEST).write_text("compose.yaml\n")
    with pytest.raises(UsageError, match="rendered with --partitions 2"):
        _render(out, Target.COMPOSE, 3)


def test_a_render_that_records_nothing_keeps_the_earlier_record(tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    _render(out, Target.KUBERNETES, 3)
    files, _ = render_files(_dep(3), Target.KUBERNETES, out, kafka_source_ranges=RANGES)
    write_render(out, files)
    assert (out / MANIFEST).read_text().startswith("# partitions 3\n")
    with pytest.raises(UsageError):
        _render(out, Target.KUBERNETES, 6)


def test_more_brokers_are_not_refused(tmp_path: Path) -> None:
    """Brokers may be added (and Strimzi refuses to remove one that holds replicas)."""
    out = tmp_path / "deploy"
    dep = _dep(3, brokers=1)
    write_render(
        out, render_files(dep, Target.KUBERNETES, out, kafka_source_ranges=RANGES)[0], dep.kept()
    )
    dep = _dep(3, brokers=3)
    write_render(
        out, render_files(dep, Target.KUBERNETES, out, kafka_source_ranges=RANGES)[0], dep.kept()
    )
    pool = yaml.safe_load((out / "kafka" / "node-pool.yaml").read_text())
    assert pool["spec"]["replicas"] == 3


def test_an_ingress_topics_delete_says_its_records_must_be_processed_first(
    tmp_path: Path,
) -> None:
    from broker.deploy import removal_commands

    out = tmp_path / "k"
    topic = out / "kafka" / "topics" / "accord.ingress.wmp.yaml"
    topic.parent.mkdir(parents=True)
    topic.write_text(yaml.safe_dump({"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaTopic",
                                     "metadata": {"name": "accord.ingress.wmp"}}))  # fmt: skip
    (out / "notes.yaml").write_text("not: a manifest\n")
    (out / MANIFEST).write_text(
        "# partitions 3\nkafka/topics/accord.ingress.wmp.yaml\nnotes.yaml\n"
    )
    (line,) = removal_commands(out, {}, "accord")
    assert line.startswith("kubectl -n accord delete kafkatopic accord.ingress.wmp   # ")
    assert "only once the workers have processed them" in line
    assert removal_commands(out, {"kafka/topics/accord.ingress.wmp.yaml": ""}, "accord") == []


def _k8s(out: Path, desks: tuple[str, ...] = (), gateways: tuple[str, ...] = ()) -> list[str]:
    """Render for Kubernetes into ``out``; the deletes the render would print."""
    from broker.deploy import removal_commands

    dep = deployment(load_bundle(POLICIES), POLICIES, brokers=3, partitions=3,
                     image="accord-broker:test", desks=desks, gateways=gateways)  # fmt: skip
    files, _ = render_files(dep, Target.KUBERNETES, out, kafka_source_ranges=RANGES)
    deletes = removal_commands(out, files, "accord")
    write_render(out, files, dep.kept())
    return deletes


def test_a_re_render_removes_the_folders_it_emptied_and_keeps_one_holding_anything_else(
    tmp_path: Path,
) -> None:
    """An empty accord/desk-<party>/ left behind read as a desk still deployed."""
    out = tmp_path / "k"
    _k8s(out, desks=("sandwell-coord",), gateways=("wmp",))
    note = out / "accord" / "flags-sandwell-coord" / "notes" / "why.txt"
    note.parent.mkdir()
    note.write_text("ours\n")
    (out / "accord" / "mine").mkdir()  # never the render's: left even though empty
    _k8s(out)
    assert not (out / "accord" / "desk-sandwell-coord").exists()
    assert not (out / "accord" / "gateway-wmp").exists()
    assert note.read_text() == "ours\n"
    assert sorted(p.name for p in note.parent.parent.iterdir()) == ["notes"]
    assert (out / "accord" / "mine").is_dir()
    assert (out / "accord" / "worker" / "deployment.yaml").is_file()


def test_nothing_outside_the_render_named_by_a_hand_edited_record_is_removed(
    tmp_path: Path,
) -> None:
    """The record is a file anyone with the folder can edit, and a render runs as whoever
    deploys: a path with ``..``, an absolute one, or one through a folder that is a symlink
    to elsewhere names nothing the render may remove, file or folder."""
    out, outside = tmp_path / "k", tmp_path / "outside"
    (outside / "linked" / "desk-x").mkdir(parents=True)
    kept = [outside / "by-dots.yaml", outside / "absolute.yaml", outside / "linked" / "a.yaml",
            outside / "linked" / "desk-x" / "b.yaml"]  # fmt: skip
    for path in kept:
        path.write_text("someone's\n")
    _k8s(out)
    (out / "elsewhere").symlink_to(outside / "linked")
    with (out / MANIFEST).open("a", encoding="utf-8") as fh:
        fh.write(f"../outside/by-dots.yaml\n{outside / 'absolute.yaml'}\nelsewhere/a.yaml\n"
                 "elsewhere/desk-x/b.yaml\n")  # fmt: skip
    _k8s(out)
    assert all(path.is_file() for path in kept)
    assert (outside / "linked" / "desk-x").is_dir()


def test_a_dropped_service_monitors_delete_says_it_is_only_for_a_cluster_with_monitoring(
    tmp_path: Path,
) -> None:
    """monitoring/ is optional: without the Prometheus Operator kubectl refuses the kind."""
    out = tmp_path / "k"
    _k8s(out, gateways=("wmp",))
    deletes = _k8s(out)
    (monitor,) = [line for line in deletes if " delete servicemonitor " in line]
    assert monitor.startswith("kubectl -n accord delete servicemonitor accord-gateway-wmp   # ")
    assert "only if you applied monitoring/" in monitor
    assert not any("monitoring/" in line for line in deletes if line != monitor)
