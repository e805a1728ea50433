"""The recipients' desks on Kubernetes (``accord deploy render --desk PARTY``): what a desk's
or a co-ordinating team's flag service's pod has that the partnership's own pods do not.

Each runs as its party, never as one of Accord's service principals: its Kafka login is the
Secret Strimzi makes for the party's ``KafkaUser`` (the render makes one per party already),
and its keystore is the platform's Secret ``accord-keystore-<party>`` (``keystore.tar``; its
passphrase in ``accord-keystore-<party>-passphrase``), unpacked into memory as the worker's
is. So a desk's pod mounts its own party's Secrets and no one else's, whatever other desks
the namespace runs.

Its home (``ACCORD_HOME``) is a PersistentVolumeClaim of its own, not an ``emptyDir``: a
desk keeps its accounts (``desk/<party>/users.json``) and its store
(``desk/<party>.db``, SQLite) there, a flag service its data folder
(``desk/<party>/flags/``, whose ``withdrawn-keep.json`` must outlive the pod: docs/desk.md,
"What the flag service keeps of a withdrawal"), and both the SDK's replay memory
(``sdk/``). The volume is ReadWriteOnce and a store has one writer, so each runs one
replica and is replaced, not rolled (``Recreate``): two pods of one desk never run at once.

Neither names a bundle on its command line (``accord desk --as PARTY``): it loads the one
``ACCORD_POLICIES`` names, the bundle ConfigMap mounted as for the worker, and rolls with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from broker.deploy._model import Process
from broker.errors import UsageError

__all__ = ["check_names", "home_claim", "home_claim_name", "resources_of"]

Manifest = dict[str, Any]

# A Service's name is a DNS label (at most 63 characters); the longest a desk makes is its
# flag service's ops Service.
_SERVICE_NAME_MAX = 63

# Starting points the platform overlays. A desk is a small web app over SQLite; a flag
# service keeps its tables in memory (restored from their changelogs at each start), so it
# may grow with the children and households it watches.
_RESOURCES = {
    "desk": {"requests": {"cpu": "100m", "memory": "256Mi"},
             "limits": {"cpu": "1", "memory": "512Mi"}},
    "flags": {"requests": {"cpu": "100m", "memory": "512Mi"},
              "limits": {"cpu": "1", "memory": "1Gi"}},
}  # fmt: skip
# A desk's store holds the views delivered to it; a flag service's folder holds a small file.
_STORAGE = {"desk": "5Gi", "flags": "1Gi"}


def _kind(process: Process) -> str:
    return "flags" if process.web_port is None else "desk"


def check_names(processes: tuple[Process, ...], *, option: str = "--desk") -> None:
    """Refuse, in one line, a party whose desk's (or gateway's) objects Kubernetes could
    not name."""
    for process in processes:
        longest = f"accord-{process.name}-ops"
        if len(longest) > _SERVICE_NAME_MAX:
            raise UsageError(
                f"{option} {process.party}: '{longest}' cannot name a Kubernetes Service "
                f"(at most {_SERVICE_NAME_MAX} characters)"
            )


def resources_of(process: Process) -> Manifest:
    return _RESOURCES[_kind(process)]


def home_claim_name(process: Process) -> str:
    return f"accord-{process.name}"


def home_claim(process: Process, labels: Mapping[str, str]) -> Manifest:
    """The process's ``ACCORD_HOME``: what it keeps there must outlive the pod (above)."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": home_claim_name(process), "labels": dict(labels)},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": _STORAGE[_kind(process)]}},
        },
    }
