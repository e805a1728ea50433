"""What a bundle folder may hold (docs/policy-language.md §1, "What else a bundle folder may
hold"): anything the loader would not read, but looks as if it should be, is a problem.

The loader reads fixed names. A file under another name is not read, so a misspelt
``restriction.yaml`` or an agreement filed in ``agreements/2026/`` would drop its rules with
nothing said: the bundle would pass its check and share what its author meant to withhold.
So the layout is closed:

- at the root: ``parties``, ``restrictions``, ``consent-authorities`` and ``flags``, each
  ``.yaml`` (or ``.yml``), and the folders ``agreements/`` and ``scenarios/``;
- in ``agreements/``: files ending ``.yaml`` or ``.yml``, one agreement each, and no folder.

Any other file ending ``.yaml``, ``.yml`` or ``.json`` (JSON is YAML too, and would be just
as silently left out), in any case, and any other folder is refused, naming it, with the
name it was most likely meant to have. Other files (``README.md``, ``NOTES.txt``) are not
policy and are left alone, as is anything hidden (``.git``, ``.gitkeep``, an editor's lock
file, Kubernetes' ``..data`` in a mounted ConfigMap).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Final

__all__ = ["BUNDLE_FILES", "agreement_files", "bundle_files", "layout_problems"]

#: The root files the loader reads, by stem; each may be spelt .yaml or .yml.
BUNDLE_FILES: Final = ("parties", "restrictions", "consent-authorities", "flags")
_FOLDERS: Final = ("agreements", "scenarios")
_SUFFIXES: Final = (".yaml", ".yml")
# Files that would be read as policy if the name were right.
_LOOKS_LIKE_POLICY: Final = frozenset({".yaml", ".yml", ".json"})
_ALLOWED: Final = "parties.yaml, restrictions.yaml, consent-authorities.yaml, flags.yaml"


def _hidden(path: Path) -> bool:
    return path.name.startswith(".")


def _guess(name: str, options: tuple[str, ...]) -> str | None:
    found = difflib.get_close_matches(name.lower(), options, n=1, cutoff=0.6)
    return found[0] if found else None


def _root_file(path: Path) -> str | None:
    """The problem with a root file, if it looks like policy the loader would not read."""
    if path.suffix.lower() not in _LOOKS_LIKE_POLICY:
        return None
    stem = path.name.split(".", 1)[0]
    guess = _guess(stem, (*BUNDLE_FILES, *_FOLDERS))
    if guess in BUNDLE_FILES:
        hint = f"did you mean {guess}.yaml?"
    elif guess == "agreements":
        hint = "did you mean agreements/ (a folder, one file per agreement)?"
    else:
        hint = f"a bundle's own files are {_ALLOWED} and agreements/*.yaml"
    return f"{path.name}: not a file a policy bundle reads, so its rules would be lost; {hint}"


def _root_folder(path: Path) -> str | None:
    if path.name in _FOLDERS:
        return None
    guess = _guess(path.name, _FOLDERS)
    hint = f"did you mean {guess}/?" if guess else "a bundle holds only agreements/ and scenarios/"
    return f"{path.name}/: not a folder a policy bundle reads; {hint}"


def _agreements_entry(path: Path) -> str | None:
    rel = f"agreements/{path.name}"
    if path.is_dir():
        return (
            f"{rel}/: agreements are read from agreements/ itself, not from folders within it; "
            "move its files up"
        )
    suffix = path.suffix
    if suffix.lower() in _LOOKS_LIKE_POLICY and suffix not in _SUFFIXES:
        return f"{rel}: an agreement file is read only if its name ends .yaml or .yml"
    return None


def layout_problems(root: Path) -> list[str]:
    """One line for each entry of the bundle folder ``root`` that looks like policy but would
    not be read (sorted by name)."""
    problems: list[str] = []
    for path in sorted(root.iterdir()):
        if _hidden(path):
            continue
        if path.suffix in _SUFFIXES and path.stem in BUNDLE_FILES:
            # A folder or a broken link under a bundle file's name would read as no file.
            found = None if path.is_file() else f"{path.name}: not a file that can be read"
        elif path.is_dir():
            found = _root_folder(path)
        else:
            found = _root_file(path)
        if found:
            problems.append(found)
    folder = root / "agreements"
    if folder.exists() and not folder.is_dir():
        problems.append("agreements: must be a folder, with one file per agreement")
    elif folder.is_dir():
        for path in sorted(folder.iterdir()):
            if not _hidden(path) and (found := _agreements_entry(path)):
                problems.append(found)
    return problems


def agreement_files(root: Path) -> list[Path]:
    """The agreement files of the bundle in ``root``, sorted by name."""
    folder = root / "agreements"
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir() if not _hidden(p) and p.suffix in _SUFFIXES and not p.is_dir()
    )


def bundle_files(root: Path) -> list[Path]:
    """Every file the loader reads from the bundle in ``root``: its root files (as spelt
    there), then its agreements. What a deployment must ship, and nothing else (not its
    scenarios, nor anything hidden such as ``.git``)."""
    found = [
        path
        for stem in BUNDLE_FILES
        for suffix in _SUFFIXES
        if (path := root / f"{stem}{suffix}").is_file()
    ]
    return [*found, *agreement_files(root)]
