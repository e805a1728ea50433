"""Writing a render to disk: every file the target produces, and nothing left over.

A render is a mapping of relative paths to contents. The list of what the last render wrote
is kept in ``.accord-render``, so that a party removed from the bundle takes its files with
it at the next render while files the render never wrote (notes, overlays, the secrets
folder) are left alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = ["MANIFEST", "manifest_yaml", "write_render"]

MANIFEST = ".accord-render"


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


def write_render(out: Path, files: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """Write ``files`` under ``out``; remove what the previous render wrote and this one does
    not. Return (written, removed), relative paths, sorted."""
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / MANIFEST
    before = set(manifest.read_text(encoding="utf-8").split()) if manifest.is_file() else set()
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
        (out / rel).unlink(missing_ok=True)
    manifest.write_text("".join(f"{rel}\n" for rel in sorted(files)), encoding="utf-8")
    return sorted(files), removed
