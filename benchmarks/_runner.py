"""How ``python -m benchmarks`` runs its modules and keeps their results.

A benchmark run takes many minutes on a shared machine, and one module failing (a broker
slow to answer, a worker that exits) must cost only that module's figures: each module runs
on its own, its failure is recorded beside the others' results, and the report is written
again after every module, atomically, so a run that is killed keeps what it had measured.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

# A message longer than this is cut: the report holds a line, the traceback goes to stderr.
_MESSAGE_CHARS = 300


def load_average() -> dict[str, float]:
    """The 1-, 5- and 15-minute load averages now: a busy machine, not slow code, is often
    why a figure moved."""
    one, five, fifteen = os.getloadavg()
    return {"1m": round(one, 2), "5m": round(five, 2), "15m": round(fifteen, 2)}


def error_summary(exc: BaseException) -> dict[str, str]:
    """The error's type and the first line of its message (never the traceback)."""
    lines = str(exc).strip().splitlines()
    # aiokafka's errors name themselves in their message: once is enough.
    message = lines[0].removeprefix(f"{type(exc).__name__}: ") if lines else ""
    if len(message) > _MESSAGE_CHARS:
        message = message[: _MESSAGE_CHARS - 1] + "…"
    return {"type": type(exc).__name__, "message": message}


def failure(result: dict[str, Any]) -> str | None:
    """What went wrong in a module's result, in one line, or None if nothing did."""
    if "error" in result:
        return f"{result['error']['type']}: {result['error']['message']}"
    phase = result.get("failed_phase")
    if phase:
        return f"{phase['phase']} phase: {phase['type']}: {phase['message']}"
    return None


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and a rename: a reader, or
    a run killed while writing, sees the old report or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(data, indent=2) + "\n")
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Report:
    """``bench.json`` as the run goes: the machine, each module's results, and the run's state
    (``run``: the modules planned, the one running, those that failed, whether it finished)."""

    def __init__(self, out: Path, machine: dict[str, Any], modules: list[str]) -> None:
        self.out = out
        self.data: dict[str, Any] = {
            "machine": {**machine, "load_average_start": load_average()},
            "run": {"modules": modules, "running": None, "failed": [], "finished": False},
        }
        self.save()

    @property
    def failed(self) -> list[str]:
        return list(self.data["run"]["failed"])

    def save(self) -> None:
        write_atomic(self.out, self.data)

    def run(self, name: str, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Run one module's ``call``; its result, or its error, is saved before this returns."""
        self.data["run"]["running"] = name
        self.save()
        load = load_average()
        started = time.perf_counter()
        try:
            result = call()
        except Exception as exc:  # noqa: BLE001  # any module's failure is recorded; the run goes on
            traceback.print_exc(file=sys.stderr)
            result = {"error": error_summary(exc)}
        result["seconds"] = round(time.perf_counter() - started, 1)
        result["load_average_start"] = load
        self.data[name] = result
        if failure(result) is not None:
            self.data["run"]["failed"].append(name)
        self.data["run"]["running"] = None
        self.save()
        return result

    def close(self, *, finished: bool = True) -> None:
        """Write the report a last time; ``finished`` only when every module ran (an
        interrupted run says so, with the module it was in as ``running``)."""
        self.data["machine"]["load_average_end"] = load_average()
        self.data["run"]["finished"] = finished
        self.save()

    def failures(self) -> list[str]:
        """One line a failed module: its name and what went wrong."""
        return [f"{name}: {failure(self.data[name])}" for name in self.failed]
