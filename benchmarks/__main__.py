"""``python -m benchmarks`` (``make bench``): every ``bench_*.py``, one broker, one report.

Each module defines ``run() -> dict`` or ``run(ctx) -> dict``; modules that take ``ctx`` get
``ctx.admin``, how to reach one embedded Apache Kafka started for the whole run as its admin
(secured as the embedded default is: TLS, SCRAM logins, ACLs), or ``ACCORD_KAFKA_BOOTSTRAP``
with the ``ACCORD_KAFKA__*`` login. Results print as JSON and land in ``artifacts/bench.json`` with
the machine's facts. Benchmarks report ratios against baselines measured in the same run; they
never assert.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from broker.config import KafkaSettings, load_settings  # noqa: E402  # after the path is set


@dataclass(frozen=True)
class Context:
    admin: KafkaSettings

    @property
    def bootstrap(self) -> str:
        return self.admin.bootstrap


def _machine() -> dict[str, Any]:
    mem = next(
        (line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
         if line.startswith("MemTotal:")),
        "0",
    )  # fmt: skip
    from broker.devkafka import KAFKA_VERSION

    return {
        "cores": os.cpu_count(),
        "memory_gib": round(int(mem) / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kafka": KAFKA_VERSION,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--only", action="append", help="run only bench_NAME (repeatable)")
    args = parser.parse_args(argv)
    names = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if args.only:
        names = [n for n in names if n.removeprefix("bench_") in args.only or n in args.only]
    results: dict[str, Any] = {"machine": _machine()}
    node = None
    admin = load_settings().kafka if os.environ.get("ACCORD_KAFKA_BOOTSTRAP") else None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for name in names:
                module = importlib.import_module(f"benchmarks.{name}")
                run = module.run
                takes_ctx = (
                    bool(inspect.signature(run).parameters)
                    and next(iter(inspect.signature(run).parameters)) == "ctx"
                )
                if takes_ctx and admin is None:
                    from broker.devkafka import EmbeddedKafka, free_port

                    cache = Path(os.environ.get("ACCORD_HOME") or Path.home() / ".cache" / "accord")
                    node = EmbeddedKafka(Path(tmp) / "kafka", home=cache, port=free_port(),
                                         controller_port=free_port())  # fmt: skip
                    node.start()
                    admin = node.client_settings()
                print(f"== {name}", flush=True)
                started = time.perf_counter()
                result = run(Context(admin)) if takes_ctx else run()  # type: ignore[arg-type]
                result["seconds"] = round(time.perf_counter() - started, 1)
                results[name.removeprefix("bench_")] = result
                print(json.dumps(result, indent=2), flush=True)
        finally:
            if node is not None:
                node.stop()
    out = HERE.parent / "artifacts" / "bench.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
