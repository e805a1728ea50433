"""What a Kubernetes re-render no longer makes, and the commands that delete it.

``kubectl apply -k`` creates and updates; it never deletes. A party offboarded from the bundle
loses its files at the next render (``write_render``), but its ``KafkaUser`` (the login and
its ACLs), its topics, and a dropped desk's workloads stay in the cluster until deleted: the
render says which, as the exact ``kubectl delete`` commands, read from the files before they
are removed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from broker import topics
from broker.deploy._files import read_manifest

__all__ = ["removal_commands"]

# Deleted in this order: the login first (the party is refused at once), then what runs as
# it, then the topics and the volumes, whose data goes with them.
_ORDER = ("KafkaUser", "Deployment", "Service", "NetworkPolicy", "ConfigMap",
          "ServiceMonitor", "KafkaTopic", "PersistentVolumeClaim")  # fmt: skip


def _why(kind: str, name: str) -> str:
    if kind == "KafkaUser":
        return "its login and its ACLs"
    if kind == "KafkaTopic":
        if name.startswith(topics.INGRESS_PREFIX):
            return ("deletes the topic and its records: only once the workers have processed "
                    "them (accord_consumer_lag 0 for it)")  # fmt: skip
        if name.startswith(topics.DELIVER_PREFIX):
            return "deletes the topic and its records: only once the recipient has read them"
        return "deletes the topic and its records"
    if kind == "PersistentVolumeClaim":
        return "deletes its data: only once no one needs it (back it up first)"
    return ""


def _objects(out: Path, rels: list[str]) -> list[tuple[str, str]]:
    found = []
    for rel in rels:
        path = out / rel
        if not rel.endswith(".yaml") or not path.is_file():
            continue
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
            kind, name = doc["kind"], doc["metadata"]["name"]
        except (yaml.YAMLError, KeyError, TypeError):
            continue  # not one of the render's manifests: nothing to delete in the cluster
        if isinstance(kind, str) and isinstance(name, str) and kind != "Kustomization":
            found.append((kind, name))
    rank = {kind: n for n, kind in enumerate(_ORDER)}
    return sorted(found, key=lambda o: (rank.get(o[0], len(_ORDER)), o))


def removal_commands(out: Path, files: Mapping[str, str], namespace: str) -> list[str]:
    """For a Kubernetes render of ``files`` into ``out``: one ``kubectl -n NS delete KIND NAME``
    line (a comment after it when the deletion takes data or access with it) for each object
    the previous render into ``out`` made and this one does not. Call it before
    ``write_render``, which removes the files it reads."""
    before, _ = read_manifest(out)
    lines = []
    for kind, name in _objects(out, sorted(before - set(files))):
        command = f"kubectl -n {namespace} delete {kind.lower()} {name}"
        why = _why(kind, name)
        lines.append(f"{command}   # {why}" if why else command)
    return lines
