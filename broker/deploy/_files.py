"""Writing a render to disk: every file the target produces, and nothing left over.

A render is a mapping of relative paths to contents. The list of what the last render wrote
is kept in ``.accord-render``, so that a party removed from the bundle takes its files with
it at the next render while files the render never wrote (notes, overlays, the secrets
folder) are left alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

__all__ = ["MANIFEST", "write_render"]

MANIFEST = ".accord-render"


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
