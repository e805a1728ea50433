"""The Secrets a Kubernetes render's pods mount that no one but the platform team makes.

Strimzi makes a Secret per ``KafkaUser`` and the cluster CA's; the render makes none. The
keystores, their passphrases and the audit index's URL the team creates by hand, and a pod
whose Secret is missing waits in ``ContainerCreating``: with the workers replaced all
together (``Recreate``), an upgrade that needs a new one stops the pipeline until it exists.
So the render lists them, read from the manifests it wrote, with the command that checks
them before ``kubectl apply -k``; and after an offboarding, the party's keystore Secrets,
which nothing else would ever delete.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import yaml

__all__ = ["keystore_secrets", "mounted_secrets", "platform_secrets", "strimzi_secrets"]


def keystore_secrets(principal: str) -> tuple[str, str]:
    """The Secrets of ``principal``'s keystore (``keystore.tar``) and of its passphrase
    (``passphrase``), apart so that RBAC can give them to different people."""
    keystore = f"accord-keystore-{principal}"
    return keystore, f"{keystore}-passphrase"


def _secret_keys(volume: Mapping[str, Any]) -> Iterable[tuple[str, list[str]]]:
    if "secret" in volume:
        secret = volume["secret"]
        yield secret["secretName"], [i["key"] for i in secret.get("items", [])]
    for source in volume.get("projected", {}).get("sources", []):
        if "secret" in source:
            secret = source["secret"]
            yield secret["name"], [i["key"] for i in secret.get("items", [])]


def mounted_secrets(deployment: Mapping[str, Any]) -> dict[str, set[str]]:
    """Secret name -> the keys a ``Deployment``'s pods mount from it."""
    found: dict[str, set[str]] = {}
    for volume in deployment["spec"]["template"]["spec"].get("volumes", []):
        for name, keys in _secret_keys(volume):
            found.setdefault(name, set()).update(keys)
    return found


def _docs(files: Mapping[str, str]) -> Iterable[Mapping[str, Any]]:
    for rel, text in files.items():
        if rel.endswith(".yaml"):
            doc = yaml.safe_load(text)
            if isinstance(doc, dict) and "kind" in doc:
                yield doc


def strimzi_secrets(files: Mapping[str, str]) -> set[str]:
    """The Secrets Strimzi makes for a render: one per ``KafkaUser``, the cluster CA's."""
    made = set()
    for doc in _docs(files):
        if doc["kind"] == "KafkaUser":
            made.add(doc["metadata"]["name"])
        elif doc["kind"] == "Kafka":
            made.add(f"{doc['metadata']['name']}-cluster-ca-cert")
    return made


def platform_secrets(files: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """Secret name -> its keys, sorted by name, for every Secret the render's pods mount that
    neither the render nor Strimzi makes: the platform team creates each before applying."""
    made = strimzi_secrets(files)
    needed: dict[str, set[str]] = {}
    for doc in _docs(files):
        if doc["kind"] == "Deployment":
            for name, keys in mounted_secrets(doc).items():
                if name not in made:
                    needed.setdefault(name, set()).update(keys)
    return {name: tuple(sorted(needed[name])) for name in sorted(needed)}
