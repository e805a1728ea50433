"""The Makefile's setup steps on a fresh or half-set-up machine: Maven is installed before
Kafka's jars are fetched (unless they are cached), and a half-made virtualenv is made again.

Real ``make`` runs the real recipes, with a throwaway ``VENV`` whose Python is a stand-in
that records what it is asked: nothing is installed, fetched or started.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _venv_python(venv: Path, log: Path, *, pip: bool = True, cached: bool = False) -> None:
    """A venv's python: logs its arguments; ``--cached`` answers as told; no pip if told."""
    _script(
        venv / "bin" / "python",
        f'echo "venv $*" >> "{log}"\n'
        f'case "$*" in *--cached*) exit {0 if cached else 1};; esac\n'
        f'case "$*" in "-m pip"*) exit {0 if pip else 1};; esac\n'
        "exit 0\n",
    )


def _make(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": path or os.environ["PATH"]}
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), *args],
        env=env, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip


def _fresh_stamp(venv: Path) -> None:
    stamp = venv / ".installed-stamp"
    stamp.touch()
    later = (REPO / "pyproject.toml").stat().st_mtime + 60
    os.utime(stamp, (later, later))  # the venv is up to date: only kafka-jars' own steps run


@pytest.mark.parametrize("cached", [False, True])
def test_kafka_jars_makes_sure_of_maven_first_unless_the_jars_are_cached(
    tmp_path: Path, cached: bool
) -> None:
    venv, log = tmp_path / "venv", tmp_path / "log"
    _venv_python(venv, log, cached=cached)
    _fresh_stamp(venv)
    # A Maven on PATH: ensure-maven.sh finds it, so nothing is installed here.
    mvn = _script(tmp_path / "bin" / "mvn", "exit 0\n")
    result = _make(
        f"VENV={venv}", "kafka-jars", path=f"{mvn.parent}{os.pathsep}{os.environ['PATH']}"
    )
    assert result.returncode == 0, result.stderr
    assert log.read_text().splitlines() == [
        "venv -m broker.devkafka --cached",
        "venv -m broker.devkafka",
    ]
    assert (f"maven: {mvn}" in result.stdout) is not cached


def test_ensure_maven_installs_debians_package_when_mvn_is_absent(tmp_path: Path) -> None:
    here = tmp_path / "dev"
    here.mkdir()
    shutil.copy(REPO / "deploy" / "dev" / "ensure-maven.sh", here)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "chmod"):  # all the scripts need, and no mvn
        (bin_dir / tool).symlink_to(shutil.which(tool) or tool)
    # apt-install.sh stood in for: records the package and "installs" an mvn.
    _script(
        here / "apt-install.sh",
        f'echo "$1" > "{tmp_path}/asked"\n'
        f'printf "#!/bin/sh\\n" > "{bin_dir}/mvn"; chmod +x "{bin_dir}/mvn"\n',
    )
    result = subprocess.run(
        [shutil.which("bash") or "/bin/bash", str(here / "ensure-maven.sh")],
        env={"PATH": str(bin_dir)}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "asked").read_text() == "maven\n"
    assert result.stdout == f"maven: {bin_dir / 'mvn'}\n"


def _system_python(tmp_path: Path, log: Path) -> Path:
    """``python3``: ``-m venv DIR`` makes a venv whose pip works; everything else is logged."""
    good = _script(tmp_path / "good-python", f'echo "venv $*" >> "{log}"\nexit 0\n')
    return _script(
        tmp_path / "python3",
        f'echo "python3 $*" >> "{log}"\n'
        'if [ "$1 $2" = "-m venv" ]; then\n'
        f'  mkdir -p "$3/bin" && cp "{good}" "$3/bin/python"\n'
        "fi\n"
        "exit 0\n",
    )


def test_a_half_made_venv_whose_pip_fails_is_made_again(tmp_path: Path) -> None:
    venv, log = tmp_path / "venv", tmp_path / "log"
    # What python3 -m venv leaves on Debian without python3-venv: bin/python, and no pip.
    _venv_python(venv, log, pip=False)
    python3 = _system_python(tmp_path, log)
    result = _make(f"VENV={venv}", f"PYTHON={python3}", str(venv / ".installed-stamp"))
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    assert f"python3 -m venv {venv}" in calls
    assert calls[-2:] == ["venv -m pip install --quiet --upgrade pip",
                          "venv -m pip install --quiet -e .[test]"]  # fmt: skip
    assert (venv / ".installed-stamp").is_file()


def test_a_working_venv_is_kept(tmp_path: Path) -> None:
    venv, log = tmp_path / "venv", tmp_path / "log"
    _venv_python(venv, log)
    python3 = _system_python(tmp_path, log)
    result = _make(f"VENV={venv}", f"PYTHON={python3}", str(venv / ".installed-stamp"))
    assert result.returncode == 0, result.stderr
    assert not [c for c in log.read_text().splitlines() if "-m venv" in c]
