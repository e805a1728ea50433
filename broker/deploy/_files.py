"""Writing a render to disk: every file the target produces, and nothing left over.

A render is a mapping of relative paths to contents. The list of what the last render wrote
is kept in ``.accord-render``, so that a party removed from the bundle takes its files with
it at the next render while files the render never wrote (notes, overlays, the secrets
folder) are left alone. A folder that held only such removed files (a dropped desk's
``accord/desk-<party>/``) goes with them; one that holds anything else stays.

The same file keeps, in ``# name value`` lines, what a later render into the folder must
not change (:data:`KEPT`): ``--partitions``, since ``accord.audit`` can never be given more
partitions (docs/operations.md) and Strimzi's topic operator would add them to every
``KafkaTopic`` on the next apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from broker.errors import UsageError

__all__ = [
    "KEPT",
    "MANIFEST",
    "check_kept",
    "kustomized",
    "manifest_yaml",
    "read_manifest",
    "write_render",
]

MANIFEST = ".accord-render"
#: What a render into a folder must keep from the first (option -> why, for the refusal).
KEPT = {
    "partitions": "accord.audit's partitions can never change: its chains are placed by the "
    "count (docs/operations.md)",
}


class _Dumper(yaml.SafeDumper):
    """Safe dumping, with multi-line text (the policy files) as literal blocks a reviewer
    can read, no line folding, and no anchors: a value used twice is written out twice."""

    def ignore_aliases(self, _data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _str)


def manifest_yaml(doc: Mapping[str, Any]) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=4096, allow_unicode=True)


def read_manifest(out: Path) -> tuple[set[str], dict[str, str]]:
    """What the last render into ``out`` wrote, and what it kept (:data:`KEPT`)."""
    manifest = out / MANIFEST
    files: set[str] = set()
    kept: dict[str, str] = {}
    if not manifest.is_file():
        return files, kept
    for line in manifest.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            name, _, value = line.removeprefix("#").strip().partition(" ")
            kept[name] = value.strip()
        elif line.strip() and _relative(line.strip()):
            files.add(line.strip())
    return files, kept


def _relative(rel: str) -> bool:
    """Whether a recorded path names something under the render's folder at all: the record
    is a file anyone with the folder can edit, and a render runs as whoever deploys."""
    path = Path(rel)
    return not path.is_absolute() and ".." not in path.parts


def _inside(out: Path, folder: Path) -> bool:
    """Whether ``folder`` really is ``out`` or inside it (a symlinked folder on the way would
    lead elsewhere)."""
    return folder.resolve().is_relative_to(out.resolve())


def _rendered_partitions(out: Path) -> str | None:
    """An older render's partition count, from the files it wrote (it recorded none)."""
    try:
        topic = out / "kafka" / "topics" / "accord.audit.yaml"
        if topic.is_file():
            return str(yaml.safe_load(topic.read_text(encoding="utf-8"))["spec"]["partitions"])
        compose = out / "compose.yaml"
        if compose.is_file():
            services = yaml.safe_load(compose.read_text(encoding="utf-8"))["services"]
            return str(services["worker"]["environment"]["ACCORD_KAFKA__PARTITIONS"])
    except (KeyError, TypeError, yaml.YAMLError):
        return None
    return None


def check_kept(out: Path, kept: Mapping[str, str]) -> None:
    """``UsageError``, in one line, if ``kept`` changes what the last render into ``out``
    recorded (:data:`KEPT`). Nothing recorded: the first render, or one older than the
    record, whose partition count is read from the files it wrote."""
    _, before = read_manifest(out)
    if "partitions" not in before and (found := _rendered_partitions(out)) is not None:
        before["partitions"] = found
    for name, why in KEPT.items():
        then, now = before.get(name), kept.get(name)
        if then is not None and now is not None and then != now:
            raise UsageError(
                f"--{name} {now}: {out} was rendered with --{name} {then}, and {why}; give "
                f"--{name} {then}, or render a new deployment (a new namespace and cluster) into "
                "a new --out folder"
            )


def write_render(
    out: Path, files: Mapping[str, str], kept: Mapping[str, str] | None = None
) -> tuple[list[str], list[str]]:
    """Write ``files`` under ``out``; remove what the previous render wrote and this one does
    not; record ``kept`` (:data:`KEPT`) for the next render's :func:`check_kept`. Return
    (written, removed), relative paths, sorted."""
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / MANIFEST
    before, recorded = read_manifest(out)
    for rel, text in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        if rel.endswith(".sh"):
            tmp.chmod(0o755)
        tmp.replace(path)
    removed = sorted(before - set(files))
    for rel in removed:
        if _inside(out, (out / rel).parent):  # never a file a symlinked folder leads to
            (out / rel).unlink(missing_ok=True)
    _remove_emptied(out, removed)
    recorded |= kept or {}  # a render that records nothing keeps the earlier record
    header = "".join(f"# {name} {value}\n" for name, value in sorted(recorded.items()))
    manifest.write_text(header + "".join(f"{rel}\n" for rel in sorted(files)), encoding="utf-8")
    return sorted(files), removed


def _remove_emptied(out: Path, removed: list[str]) -> None:
    """Remove each folder under ``out`` that held a removed file and is now empty, then its
    parents the same way: the render made them, and an empty one left behind reads as a
    desk or gateway still deployed. A folder with anything else in it is someone's: kept."""
    folders = {
        parent
        for rel in removed
        for parent in Path(rel).parents
        if parent.parts  # read_manifest kept only paths under ``out``
    }
    # Deepest first, so that a parent is emptied by its children's removal before its turn.
    for folder in sorted(folders, key=lambda f: len(f.parts), reverse=True):
        path = out / folder
        if path.is_symlink() or not _inside(out, path) or not path.is_dir() or any(path.iterdir()):
            continue
        try:
            path.rmdir()
        except OSError:
            continue  # taken or filled meanwhile: an empty folder left is harmless


def kustomized(root: str, namespace: str, resources: Mapping[str, Any]) -> dict[str, str]:
    """``resources`` (path under ``root`` -> manifest) as files, with the kustomization that
    lists them in ``namespace``."""
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": namespace,
        "resources": list(resources),
    }
    files = {f"{root}/{rel}": manifest_yaml(doc) for rel, doc in resources.items()}
    files[f"{root}/kustomization.yaml"] = manifest_yaml(kustomization)
    return files
