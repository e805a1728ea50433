"""The worker's per-record path, offline: no Kafka, just ``Processor.handle`` and commits.

``bench_pipeline`` measures the whole worker against Kafka; this finds where its CPU goes.
It builds the worker's processor as ``broker/pipeline/_worker.py`` does (the bundle in
``policies/``, a keystore per principal as ``accord keys init --policies`` makes them, the
worker's own keystore, services and outbox), seals N of ``bench_pipeline``'s events as their
sender would, then, on a fresh processor each time:

1. times ``Processor.handle`` over every record, with ``consumed()`` after every 100 (what
   each transaction's commit adds: offsets, a signed checkpoint, the chain's head), in
   ``--repeat`` passes, and shows the median pass in wall-clock and in CPU time (CPU time
   moves less when other work shares the machine);
2. times each stage of the ingress chain and the outbox separately (a second pass, every
   stage wrapped in a timer, so slightly slower in total than the first);
3. runs the first pass again under cProfile and prints its top 25 by cumulative and by own
   time.

``python -m benchmarks.profile_pipeline [--events N] [--repeat R] [--top K] [--no-profile]``.
It reports; it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from benchmarks.bench_pipeline import POLICIES, SENDER, _events
from broker._canonical import canonical_json
from broker.audit import GENESIS, ChainWriter
from broker.config import EnvelopeSettings
from broker.envelope import Sealer
from broker.keys import FileKeyStore, init_keystores
from broker.pipeline._effects import OutRecord
from broker.pipeline._metrics import Metrics
from broker.pipeline._processor import Processor, build_processor
from broker.pipeline._stages import Stage, Step, Work
from broker.pipeline._state import WorkerState
from broker.policy import Policy, load_bundle
from broker.principals import Principal
from broker.topics import SCHEMA_EVENT, ingress

BATCH = 100  # the worker's max_batch: one transaction commit per 100 records


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Sealed:
    topic: str
    partition: int
    offset: int
    value: bytes
    headers: Sequence[tuple[str, bytes | None]]


def keystores(root: Path, policy: Policy) -> FileKeyStore:
    """A keystore per principal, as ``accord keys init --policies``; the worker's is returned."""
    parties = list(policy.bundle.parties)
    init_keystores(root, parties, passphrase=None, kem=EnvelopeSettings().kem)
    return FileKeyStore(root / Principal.WORKER)


def seal_events(root: Path, n: int) -> list[Sealed]:
    """``n`` of bench_pipeline's events, sealed by their sender to the worker."""
    sender = FileKeyStore(root / SENDER)
    sealer = Sealer(SENDER, sender)
    topic = ingress(SENDER)
    out = []
    for i, e in enumerate(_events(n, seed=1)):
        s = sealer.seal(canonical_json(e), event_id=e["event_id"], recipient=Principal.WORKER,
                        schema=SCHEMA_EVENT, topic=topic)  # fmt: skip
        out.append(Sealed(topic, i % 3, i // 3, s.value, s.headers))
    return out


def new_processor(policy: Policy, keys: FileKeyStore) -> Processor:
    """As ``Worker._serve`` builds it, on empty state and a new chain."""
    chain = ChainWriter(Principal.WORKER.chain("profile"), clock=_utcnow, next_seq=0,
                        prev_hash=GENESIS)  # fmt: skip
    return build_processor(
        policy=policy,
        keys=keys,
        linkage_key=keys.linkage_key(),
        state=WorkerState(),
        chain=chain,
        clock=_utcnow,
        envelope=EnvelopeSettings(),
        metrics=Metrics(CollectorRegistry()),
    )


def drive(processor: Processor, records: Sequence[Sealed]) -> int:
    """Every record through ``handle``, a commit's ``consumed`` after each batch; records out."""
    produced = 0
    offsets: dict[tuple[str, int], int] = {}
    for i, r in enumerate(records, 1):
        produced += len(processor.handle(r.topic, r.partition, r.offset, r.value, r.headers,
                                         at=_utcnow()))  # fmt: skip
        offsets[(r.topic, r.partition)] = r.offset + 1
        if i % BATCH == 0 or i == len(records):
            produced += len(processor.consumed(offsets))
            offsets = {}
    return produced


class _Clock:
    """Time spent per part of the path; a part entered inside another counts only once, in
    the inner part (the outbox's work inside a commit counts as the commit's)."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self._inside: str | None = None

    def wrap(self, name: str, inner: Callable[..., Any]) -> Callable[..., Any]:
        self.totals.setdefault(name, 0.0)

        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._inside is not None:
                return inner(*args, **kwargs)
            self._inside = name
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.totals[name] += time.perf_counter() - start
                self._inside = None

        return timed


def staged(processor: Processor, records: Sequence[Sealed]) -> dict[str, float]:
    """Seconds spent in each ingress stage, the outbox, the commits and the rest of
    ``handle`` (routing, the chain's own bookkeeping), over ``records``."""
    clock = _Clock()
    chains = processor._chains  # a profiler looks inside; nothing else should
    chains["ingress"] = [_Stage(s, clock.wrap(f"stage {s.name}", s)) for s in chains["ingress"]]
    outbox = processor.outbox
    # Timers on this one processor's own methods, for this pass only.
    outbox.apply = clock.wrap("outbox (audit, state)", outbox.apply)  # type: ignore[method-assign]
    processor.consumed = clock.wrap("consumed (commit)", processor.consumed)  # type: ignore[method-assign]
    handle = processor.handle
    handled = [0.0]

    def timed_handle(*args: Any, **kwargs: Any) -> list[OutRecord]:
        start = time.perf_counter()
        try:
            return handle(*args, **kwargs)
        finally:
            handled[0] += time.perf_counter() - start

    processor.handle = timed_handle  # type: ignore[method-assign]  # as above
    start = time.perf_counter()
    drive(processor, records)
    totals = dict(clock.totals)
    parts = sum(v for k, v in totals.items() if k != "consumed (commit)")
    totals["handle, the rest"] = handled[0] - parts
    totals["total"] = time.perf_counter() - start
    return totals


class _Stage:
    """A stage under the clock, still named as the chain names it."""

    def __init__(self, stage: Stage, timed: Callable[[Work], Step]) -> None:
        self.name = stage.name
        self._timed = timed

    def __call__(self, work: Work) -> Step:
        return self._timed(work)


def profiled(processor: Processor, records: Sequence[Sealed], top: int) -> str:
    prof = cProfile.Profile()
    prof.enable()
    drive(processor, records)
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out).strip_dirs()
    for order in ("cumulative", "tottime"):
        out.write(f"\n--- top {top} by {order} ---\n")
        stats.sort_stats(order).print_stats(top)
    return out.getvalue()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=3000, help="events to seal and process")
    parser.add_argument("--top", type=int, default=25, help="profile rows to print per order")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes (median shown)")
    parser.add_argument("--no-profile", action="store_true", help="timings only")
    args = parser.parse_args(argv)
    policy = load_bundle(POLICIES)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        keys = keystores(root, policy)
        records = seal_events(root, args.events)
        n = len(records)

        walls, cpus, produced = [], [], 0
        for _ in range(max(1, args.repeat)):
            processor = new_processor(policy, keys)
            wall, cpu = time.perf_counter(), time.process_time()
            produced = drive(processor, records)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        wall, cpu = statistics.median(walls), statistics.median(cpus)
        print(f"{n} events, {produced} records out ({produced / n:.1f} per event)")
        print(f"handle + consumed, median of {len(walls)} passes: {wall / n * 1e6:.1f} µs/event "
              f"wall ({n / wall:,.0f} events/s), {cpu / n * 1e6:.1f} µs/event CPU; "
              f"best pass {min(walls) / n * 1e6:.1f} wall")  # fmt: skip

        print("\nper stage (a second pass, each stage timed on its own), µs/event:")
        totals = staged(new_processor(policy, keys), records)
        for name, seconds in totals.items():
            print(f"  {name:<22} {seconds / n * 1e6:8.1f}")

        if not args.no_profile:
            print(profiled(new_processor(policy, keys), records, args.top))


if __name__ == "__main__":
    main()
