"""``python -m benchmarks`` keeps every module's figures however the others end: a module that
fails is recorded with its error (type and one line, no traceback) and the run goes on; the
report is rewritten after each module, so a run killed later keeps what it had; the exit
status says whether any module failed, and which."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

import benchmarks.__main__ as bench_main
from benchmarks._runner import Report, error_summary


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def test_a_failing_module_is_recorded_and_the_next_still_runs(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    report = Report(out, {"cores": 1}, ["broken", "fine"])

    def broken() -> dict[str, Any]:
        raise TimeoutError("Failed to get offsets by times in 40000 ms\nsecond line")

    report.run("broken", broken)
    report.run("fine", lambda: {"per_s": 5})
    report.close()
    data = _read(out)
    assert data["broken"]["error"] == {
        "type": "TimeoutError",
        "message": "Failed to get offsets by times in 40000 ms",
    }
    assert data["fine"]["per_s"] == 5
    assert data["run"]["failed"] == ["broken"]
    assert data["run"]["finished"] is True
    assert "Traceback" not in out.read_text()
    assert report.failures() == ["broken: TimeoutError: Failed to get offsets by times in 40000 ms"]
    for name in ("broken", "fine"):
        assert set(data[name]["load_average_start"]) == {"1m", "5m", "15m"}
        assert data[name]["seconds"] >= 0
    assert set(data["machine"]["load_average_start"]) == {"1m", "5m", "15m"}
    assert set(data["machine"]["load_average_end"]) == {"1m", "5m", "15m"}


def test_the_report_is_on_disk_after_each_module(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    report = Report(out, {}, ["first", "second"])
    seen: dict[str, Any] = {}

    def second() -> dict[str, Any]:
        seen.update(_read(out))  # as a reader would find it if the run were killed now
        return {}

    report.run("first", lambda: {"per_s": 1})
    report.run("second", second)
    assert seen["first"]["per_s"] == 1
    assert seen["run"] == {
        "modules": ["first", "second"],
        "running": "second",
        "failed": [],
        "finished": False,
    }
    assert "load_average_end" not in seen["machine"]
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"]  # no temporary left behind


def test_a_phase_failure_inside_a_module_counts_as_the_module_failing(tmp_path: Path) -> None:
    report = Report(tmp_path / "bench.json", {}, ["pipeline"])
    partial = {"pipeline_events_per_s": 900, "failed_phase": {"phase": "latency",
               "type": "KafkaTimeoutError", "message": "Failed"}}  # fmt: skip
    report.run("pipeline", lambda: partial)
    assert report.failed == ["pipeline"]
    assert report.failures() == ["pipeline: latency phase: KafkaTimeoutError: Failed"]
    assert _read(tmp_path / "bench.json")["pipeline"]["pipeline_events_per_s"] == 900


def test_an_error_message_is_one_bounded_line() -> None:
    assert error_summary(ValueError("x" * 1000))["message"] == "x" * 299 + "…"
    assert error_summary(RuntimeError()) == {"type": "RuntimeError", "message": ""}


def _fake(monkeypatch: pytest.MonkeyPatch, name: str, run: Any) -> None:
    module = types.ModuleType(f"benchmarks.bench_{name}")
    module.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, f"benchmarks.bench_{name}", module)


def test_main_goes_on_past_a_failure_and_exits_non_zero_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ACCORD_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.setattr(bench_main, "_modules", lambda: ["aaa", "bbb"])

    def aaa() -> dict[str, Any]:
        raise RuntimeError("broker gone")

    _fake(monkeypatch, "aaa", aaa)
    _fake(monkeypatch, "bbb", lambda: {"per_s": 2})
    out = tmp_path / "bench.json"
    assert bench_main.main([], out=out) == 1
    data = _read(out)
    assert data["aaa"]["error"] == {"type": "RuntimeError", "message": "broker gone"}
    assert data["bbb"]["per_s"] == 2
    assert data["run"]["finished"] is True
    err = capsys.readouterr().err
    assert "  aaa: RuntimeError: broker gone" in err.splitlines()

    _fake(monkeypatch, "aaa", lambda: {"per_s": 1})
    assert bench_main.main(["--only", "bench_aaa"], out=out) == 0
    assert list(_read(out)["run"]["modules"]) == ["aaa"]


def test_an_interrupted_run_is_not_written_as_finished(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ACCORD_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.setattr(bench_main, "_modules", lambda: ["aaa", "bbb"])

    def interrupted() -> dict[str, Any]:
        raise KeyboardInterrupt

    _fake(monkeypatch, "aaa", interrupted)
    _fake(monkeypatch, "bbb", lambda: {"per_s": 2})
    out = tmp_path / "bench.json"
    with pytest.raises(KeyboardInterrupt):
        bench_main.main([], out=out)
    run = _read(out)["run"]
    assert run["finished"] is False
    assert run["running"] == "aaa"


def test_only_names_every_module_and_refuses_an_unknown_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        bench_main.main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "envelope, flags, kafka, pipeline, policy" in help_text
    assert bench_main.main(["--only", "flag"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no benchmark 'flag'" in err


def test_every_module_makes_its_topics_with_the_pipelines_partition_count() -> None:
    """``bench_flags`` runs first on the shared broker and makes topics ``bench_pipeline``
    reads; a topic keeps its first count, so both must ask for the same one."""
    from benchmarks.bench_pipeline import PARTITIONS
    from broker.config import KafkaSettings

    default = KafkaSettings(bootstrap="127.0.0.1:9092")
    assert default.partitions != PARTITIONS  # else this test shows nothing
    assert bench_main.shared_admin(default).partitions == PARTITIONS
