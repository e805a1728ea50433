"""Fresh virtualenvs with Accord installed from a wheel, as a user installs it.

The wheel is built once per test session from a copy of this working tree (so nothing is
written into the repository); each install is a new venv whose dependencies come from PyPI
(pip's cache makes that quick after the first run).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_SKIP = shutil.ignore_patterns(
    ".venv", ".git", "artifacts", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache",
    ".hypothesis", "*.egg-info", "build", "dist",
)  # fmt: skip


def _run(argv: list[str], cwd: Path | None = None) -> None:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)  # fixed argv
    assert done.returncode == 0, f"{' '.join(argv)}\n{done.stdout}\n{done.stderr}"


def build_wheels(workdir: Path) -> dict[str, Path]:
    """Both distributions: ``accord-broker`` (the default) and ``accord-sdk`` (the lean one)."""
    src = workdir / "src"
    shutil.copytree(REPO, src, ignore=_SKIP)
    out = workdir / "wheels"
    for project in (src, src / "packaging" / "sdk"):
        pip_wheel = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out)]
        _run([*pip_wheel, str(project)])
    [broker] = out.glob("accord_broker-*.whl")
    [sdk] = out.glob("accord_sdk-*.whl")
    return {"accord-broker": broker, "accord-sdk": sdk}


def venv_with(wheel: Path, where: Path) -> Path:
    """A new venv at ``where`` with ``wheel`` installed as a user would; its bin folder."""
    _run([sys.executable, "-m", "venv", str(where)])
    _run([str(where / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)])
    return where / "bin"
