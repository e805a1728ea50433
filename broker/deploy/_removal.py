"""What a Kubernetes re-render no longer makes, and the commands that delete it.

``kubectl apply -k`` creates and updates; it never deletes. A party offboarded from the bundle
loses its files at the next render (``write_render``), but its ``KafkaUser`` (the login and
its ACLs), its topics, and a dropped desk's workloads stay in the cluster until deleted: the
render says which, as the exact ``kubectl delete`` commands, read from the files before they
are removed. Last, a dropped gateway's bearer token's Secret, and the Secrets of a party's
keystore and passphrase, for any party whose login, desk or gateway went: the platform team
made them, so no render or operator would ever delete them, and they hold the party's
private keys (and the token, the right to publish as it).

What the render put in ``monitoring/`` is not in its kustomization (the Prometheus Operator's
kinds, which a cluster without it has not got): its deletes say they are for a cluster where
``monitoring/`` was applied, since elsewhere ``kubectl`` refuses them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from broker import topics
from broker.deploy._files import read_manifest
from broker.deploy._monitoring import MONITORING
from broker.deploy._platform_secrets import (
    keystore_secrets,
    mounted_secrets,
    platform_secrets,
)

__all__ = ["removal_commands"]

_GATEWAY_TOKEN = "accord-gateway-token-"  # noqa: S105  # the Secrets' names, not a value
_OPTIONAL = (f"only if you applied {MONITORING}/: without the Prometheus Operator the cluster "
             "has no such kind, and kubectl refuses the command")  # fmt: skip

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
            # The login is gone by now: the recipient can read nothing more from it.
            return ("deletes the topic and its records: any the recipient has not read are "
                    "lost (its lag was to be 0 before offboarding)")  # fmt: skip
        return "deletes the topic and its records"
    if kind == "PersistentVolumeClaim":
        return "deletes its data: only once no one needs it (back it up first)"
    return ""


# Why each of a party's two Secrets goes (the keystore's, the passphrase's).
_KEYSTORE_WHYS = (
    "the party's private keys: archive the keystore off-cluster first",
    "its passphrase: archive it too, apart from the keystore",
)


# (kind, name, the Secrets a Deployment mounted, whether it came from ``monitoring/``)
_Object = tuple[str, str, dict[str, set[str]], bool]


def _objects(out: Path, rels: list[str]) -> list[_Object]:
    """Each manifest's object among ``rels`` (:data:`_Object`)."""
    found: list[_Object] = []
    for rel in rels:
        path = out / rel
        if not rel.endswith(".yaml") or not path.is_file():
            continue
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
            kind, name = doc["kind"], doc["metadata"]["name"]
            mounted = mounted_secrets(doc) if kind == "Deployment" else {}
        except (yaml.YAMLError, KeyError, TypeError, AttributeError):
            continue  # not one of the render's manifests: nothing to delete in the cluster
        if isinstance(kind, str) and isinstance(name, str) and kind != "Kustomization":
            found.append((kind, name, mounted, rel.startswith(f"{MONITORING}/")))
    rank = {kind: n for n, kind in enumerate(_ORDER)}
    return sorted(found, key=lambda o: (rank.get(o[0], len(_ORDER)), o[0], o[1]))


def _keystores_left(removed: list[_Object], files: Mapping[str, str]) -> list[tuple[str, str]]:
    """(Secret, why) for the keystore and passphrase of each party whose ``KafkaUser`` or
    desk went, unless a pod of the new render still mounts it."""
    users = {name for kind, name, _, _ in removed if kind == "KafkaUser"}
    mounted = {s for _, _, secrets, _ in removed for s in secrets}
    still = set(platform_secrets(files))
    return [
        (secret, why)
        for party in sorted(users | _principals(mounted))
        for secret, why in zip(keystore_secrets(party), _KEYSTORE_WHYS, strict=True)
        if secret not in still
    ]


def _principals(secrets: set[str]) -> set[str]:
    """Each principal whose keystore and passphrase Secrets are both among ``secrets``."""
    candidates = {s.removeprefix("accord-keystore-") for s in secrets}
    return {p for p in candidates if set(keystore_secrets(p)) <= secrets}


def removal_commands(out: Path, files: Mapping[str, str], namespace: str) -> list[str]:
    """For a Kubernetes render of ``files`` into ``out``: one ``kubectl -n NS delete KIND NAME``
    line (a comment after it when the deletion takes data or access with it) for each object
    the previous render into ``out`` made and this one does not. Call it before
    ``write_render``, which removes the files it reads."""
    before, _ = read_manifest(out)
    removed = _objects(out, sorted(before - set(files)))
    lines = []
    for kind, name, _, optional in removed:
        command = f"kubectl -n {namespace} delete {kind.lower()} {name}"
        why = "; ".join(filter(None, (_OPTIONAL if optional else "", _why(kind, name))))
        lines.append(f"{command}   # {why}" if why else command)
    # The render cannot know whether the platform held a login-only party's keys: a Secret
    # never made is not an error.
    for secret, why in [*_tokens_left(removed, files), *_keystores_left(removed, files)]:
        lines.append(f"kubectl -n {namespace} delete secret {secret} --ignore-not-found   # {why}")
    return lines


def _tokens_left(removed: list[_Object], files: Mapping[str, str]) -> list[tuple[str, str]]:
    """(Secret, why) for the bearer token of each gateway that went, unless a pod of the new
    render still mounts it: the platform team made it, so nothing else would ever delete it."""
    mounted = {s for _, _, secrets, _ in removed for s in secrets}
    still = set(platform_secrets(files))
    why = "the gateway's bearer token: no gateway here takes it any more"
    return [(s, why) for s in sorted(mounted - still) if s.startswith(_GATEWAY_TOKEN)]
