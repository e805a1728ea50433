"""``python -m benchmarks`` (``make bench``): every ``bench_*.py``, one broker, one report.

Each module defines ``run() -> dict`` or ``run(ctx) -> dict``; modules that take ``ctx`` get
``ctx.admin``, how to reach one embedded Apache Kafka started for the whole run as its admin
(secured as the embedded default is: TLS, SCRAM logins, ACLs), or ``ACCORD_KAFKA_BOOTSTRAP``
with the ``ACCORD_KAFKA__*`` login. Results print as JSON and land in ``artifacts/bench.json`` with
the machine's facts (its load averages at the start and the end, and each module's at its own
start). The file is written again after every module (``benchmarks._runner``); a module that
fails is recorded there with its error, the run goes on with the next, and the exit status
is 1 if any failed. Benchmarks report ratios against baselines measured in the same run; they
never assert.
"""

from __future__ import annotations

import argparse
import functools
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

from benchmarks._runner import Report  # noqa: E402  # after the path is set
from broker.config import KafkaSettings, load_settings  # noqa: E402


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


def shared_admin(admin: KafkaSettings) -> KafkaSettings:
    """The embedded broker's admin settings for every module: one partition count for all.

    Modules share the broker and its topic names, and a topic keeps the count it was made
    with: ``bench_flags`` (which runs first) made the delivery and ingress topics with the
    default 3, so ``bench_pipeline``'s two workers, planned on 4 (two each), got 2 and 1."""
    from benchmarks.bench_pipeline import PARTITIONS

    return admin.model_copy(update={"partitions": PARTITIONS})


def _modules() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def main(argv: list[str] | None = None, *, out: Path | None = None) -> int:
    known = _modules()
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument(
        "--only", action="append", metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(known)}",
    )  # fmt: skip
    args = parser.parse_args(argv)
    wanted = [n.removeprefix("bench_") for n in args.only or []]
    unknown = [n for n in wanted if n not in known]
    if unknown:  # a typo must not pass as a run of nothing
        print(f"python -m benchmarks: no benchmark {unknown[0]!r}; there are: {', '.join(known)}",
              file=sys.stderr)  # fmt: skip
        return 2
    names = [n for n in known if not wanted or n in wanted]
    out = out or HERE.parent / "artifacts" / "bench.json"
    report = Report(out, _machine(), names)
    node = None
    # A scratch cluster's admin too: every module's topics with one count.
    admin = (
        shared_admin(load_settings().kafka) if os.environ.get("ACCORD_KAFKA_BOOTSTRAP") else None
    )
    with tempfile.TemporaryDirectory() as tmp:

        def call(name: str) -> dict[str, Any]:
            nonlocal node, admin
            run = importlib.import_module(f"benchmarks.bench_{name}").run
            params = list(inspect.signature(run).parameters)
            if not params or params[0] != "ctx":
                return run()  # type: ignore[no-any-return]
            if admin is None:  # the first module that needs the broker starts it
                from broker.devkafka import EmbeddedKafka, free_port

                cache = Path(os.environ.get("ACCORD_HOME") or Path.home() / ".cache" / "accord")
                node = EmbeddedKafka(Path(tmp) / "kafka", home=cache, port=free_port(),
                                     controller_port=free_port())  # fmt: skip
                node.start()
                admin = shared_admin(node.client_settings())
            return run(Context(admin))  # type: ignore[no-any-return]

        finished = False
        try:
            for name in names:
                print(f"== {name}", flush=True)
                result = report.run(name, functools.partial(call, name))
                print(json.dumps(result, indent=2), flush=True)
            finished = True
        finally:
            if node is not None:
                node.stop()
            report.close(finished=finished)
    print(f"results written to {out}")
    if report.failed:
        print("benchmarks that failed (their errors are in the results):", file=sys.stderr)
        for line in report.failures():
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
