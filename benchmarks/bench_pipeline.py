"""The whole pipeline on the embedded Apache Kafka, against raw aiokafka on the same broker.

In one run, on one broker:

1. **baseline** — raw aiokafka consume → produce of the same sealed ingress records (no
   opening, no decisions): the most any Python consumer could do with them;
2. **throughput** — the worker (a subprocess, ``accord worker``) drains N pre-loaded sealed
   events: open, validate, link, decide, redact, seal per recipient, deliver, audit, all in
   Kafka transactions. Reported as events/s and as a ratio to the baseline;
3. **two workers** — N more events drained by two ``accord worker`` processes sharing the
   consumer group: events/s, CPU-seconds per event (both workers' ``/proc`` user + system
   time over the drain, against one worker's over its own), peak RSS per worker;
4. **latency** — a fixed offered load (default 500 events/s) published through the SDK while
   the co-ordinating team's subscriber opens what it receives; p50/p99 from ``publish`` to
   ``open``, and the worker's own view of the same records from its histograms: waiting to
   be processed, its own latency to commit, and each transaction's time;
5. the worker's peak RSS (``VmHWM``);
6. the **Kafka floor** (``_floor``): the worker's own transactional loop answering each
   input with a real event's precomputed outputs, so the same Kafka work with no processing;
   its drain rate and its latency at the same offered load. Raw passthrough over the floor is
   what the transactional, audited design costs; the floor over the pipeline is Python's
   work per event.

A phase that fails ends the run of phases without losing the earlier ones' figures: they are
returned with ``failed_phase`` (the phase, the error's type, its first line), and
``ingress_partitions`` says how many partitions the worker really had.

Benchmarks report; they never assert. ``python benchmarks/bench_pipeline.py`` runs it alone
(starting its own broker); ``make bench`` runs it with the others.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from aiokafka.errors import KafkaTimeoutError

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from benchmarks import _floor, _probe
from benchmarks._runner import error_summary
from broker._canonical import canonical_json
from broker.config import KafkaSettings, Settings
from broker.devkafka import EmbeddedKafka, free_port
from broker.envelope import Sealer
from broker.kafka import KafkaClients, TopicPartition, client_settings
from broker.keys import SPECIAL_PRINCIPALS, FileKeyStore
from broker.policy import Policy, load_bundle
from broker.provision import provision
from broker.sdk import Publisher, Subscriber, default_replay_file
from broker.synthetic import SyntheticFamilies
from broker.topics import SCHEMA_EVENT, deliver, ingress

REPO = Path(__file__).resolve().parents[1]
POLICIES = REPO / "policies"
SENDER = "wmp"
PARTITIONS = 4


def _events(n: int, seed: int) -> list[dict[str, Any]]:
    fam = SyntheticFamilies(seed=seed)
    # Tipton and Wednesbury families: the co-ordinating team, a hub and schools are candidates.
    out = []
    for i in range(n):
        family, postcode = fam.faker.last_name(), fam.postcode(("DY4", "WS10"))
        child = fam.subject("child", family_name=family, postcode=postcode, school_urn="146201")
        parent = fam.subject("parent", family_name=family, postcode=postcode)
        out.append(fam.event("police.domestic_incident", SENDER, subjects=[child, parent],
                             need_level=2 + i % 2))  # fmt: skip
    return out


async def _baseline(kafka: KafkaClients, source: str, n: int) -> float:
    """Raw aiokafka: consume the sealed records and produce them unchanged elsewhere."""
    from aiokafka.admin import NewTopic

    sink = f"bench.passthrough.{os.getpid()}"
    admin = kafka.admin()
    await admin.start()
    await admin.create_topics([NewTopic(sink, 3, 1)])
    await admin.close()
    consumer = kafka.consumer(source, client_id="bench-raw", max_poll_records=2000,
                              fetch_max_wait_ms=500)  # fmt: skip
    producer = kafka.producer("bench-raw", max_batch_size=256 * 1024)
    await consumer.start()
    await producer.start()
    seen = 0
    start = time.perf_counter()
    try:
        while seen < n:
            batch = await consumer.getmany(timeout_ms=1000)
            for msgs in batch.values():
                for m in msgs:
                    await producer.send(sink, m.value, key=m.key, headers=list(m.headers))
                seen += len(msgs)
        await producer.flush()
    finally:
        await consumer.stop()
        await producer.stop()
    return n / (time.perf_counter() - start)


def _as(settings: Settings, principal: str) -> KafkaClients:
    return KafkaClients(client_settings(settings, principal))


def _start_worker(
    env: dict[str, str], log: Path, metrics_port: int, instance: str = "bench"
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "broker", "worker", "--policies", str(POLICIES),
           "--metrics-port", str(metrics_port), "--instance", instance,
           "--sender-rate", "0"]  # the worker's own ceiling: no sender budget  # fmt: skip
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log.open("ab"))  # noqa: S603


def _impact_run(env: dict[str, str], processes: int) -> float:
    """Seconds for ``accord policy impact`` (as the worker) to read and re-decide the
    retained ingress under the bundle and an unchanged copy of it."""
    with tempfile.TemporaryDirectory() as tmp:
        same = Path(tmp) / "policies"
        shutil.copytree(POLICIES, same, ignore=shutil.ignore_patterns("scenarios"))
        start = time.perf_counter()
        subprocess.run(  # noqa: S603  # our own CLI
            [sys.executable, "-m", "broker", "policy", "impact", "--policies", str(same),
             "--current", str(POLICIES), "--format", "json", "--processes", str(processes)],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        return time.perf_counter() - start


async def _drain(
    workers: list[tuple[subprocess.Popen[bytes], int]], n: int, log: Path
) -> tuple[float, float]:
    """Wait until the workers together have received ``n`` events; return events/s and the
    workers' CPU-seconds per event, both over the events received after the first look that
    found any (a worker may have taken some while the others joined the group: those, and
    the CPU they cost, are left out of both)."""
    first: tuple[float, int, float] | None = None  # when, how many received, CPU so far
    while True:
        done = sum(_probe.received(port) for _, port in workers)
        if done and first is None:
            first = (time.perf_counter(), done, sum(_probe.cpu_seconds(w.pid) for w, _ in workers))
        if done >= n:
            break
        if any(w.poll() is not None for w, _ in workers):
            raise RuntimeError(f"a worker exited; see {log}")
        await asyncio.sleep(0.25)
    assert first is not None
    at, before, cpu0 = first
    counted = done - before
    if counted < n // 5:  # too few to time: say so rather than report noise
        raise RuntimeError(f"only {counted} of {n} events were drained after timing began")
    cpu = sum(_probe.cpu_seconds(w.pid) for w, _ in workers) - cpu0
    return counted / (time.perf_counter() - at), cpu / counted


async def _two_workers(
    kafka: KafkaClients, keys: FileKeyStore, env: dict[str, str], home: Path, n: int
) -> dict[str, Any]:
    """N more events drained by two workers sharing the group; RSS and CPU per worker.

    The events are sealed first and published only once both workers hold partitions: with
    a backlog waiting, the first worker in the group would take most of it alone while the
    second started.
    """
    sealer = Sealer(SENDER, keys)
    sealed = []
    for e in _events(n, seed=3):
        s = sealer.seal(canonical_json(e), event_id=e["event_id"], recipient="worker",
                        schema=SCHEMA_EVENT, topic=ingress(SENDER))  # fmt: skip
        sealed.append((e["event_id"].encode(), s))
    log = home / "workers-2.log"
    workers = []
    for i in range(2):
        port = free_port()
        workers.append((_start_worker(env, log, port, instance=f"bench-{i}"), port))
    try:
        for _ in range(240):
            if all(_probe.assigned(port) for _, port in workers):
                break
            await asyncio.sleep(0.25)
        # Timed from the first event either worker receives, while the rest are published
        # (far faster than two workers drain them).
        draining = asyncio.create_task(_drain(workers, n, log))
        producer = kafka.producer("bench-load-2")
        await producer.start()
        try:
            for key, s in sealed:
                await producer.send(ingress(SENDER), s.value, key=key, headers=s.headers)
            await producer.flush()
        finally:
            await producer.stop()
        rate, cpu = await draining
        rss = [_probe.peak_rss_mib(w.pid) for w, _ in workers]
    finally:
        for w, _ in workers:
            w.send_signal(signal.SIGTERM)
        for w, _ in workers:
            w.wait(timeout=60)
    return {
        "two_workers_events_per_s": round(rate),
        "two_workers_cpu_ms_per_event": round(cpu * 1000, 3),
        "two_workers_peak_rss_mib": [round(r, 1) for r in rss],
    }


async def _prepare(
    admin: KafkaSettings, home: Path, out: dict[str, Any]
) -> tuple[Policy, FileKeyStore, KafkaSettings, KafkaClients, Settings]:
    """Every party's keys, and the bundle provisioned as a deployment would be."""
    policy = load_bundle(POLICIES)
    keys = FileKeyStore(home / "keys", create=True)
    for party in policy.bundle.parties:
        keys.ensure_party(party)
    for principal, purposes in SPECIAL_PRINCIPALS.items():
        keys.ensure_party(principal, purposes=purposes)
    keys.set_linkage_key()
    # As a deployment: the admin provisions, then each part logs in as itself.
    assert admin.credentials_dir is not None
    # Four partitions a topic: two workers get two of the sender's each. A topic that exists
    # already keeps its count (``make bench``'s bench_flags provisions the same bundle first,
    # with the default): the count the worker really has is reported.
    admin = admin.model_copy(update={"partitions": PARTITIONS})
    provision(policy, admin, clients_dir=admin.credentials_dir)
    kafka = KafkaClients(admin)  # the raw baseline and the loading run as the admin
    out["ingress_partitions"] = len(await _partitions(kafka, ingress(SENDER)))
    settings = Settings(
        home=home, kafka=admin.model_copy(update={"username": None, "password": None})
    )
    return policy, keys, admin, kafka, settings


async def _preload(
    kafka: KafkaClients, keys: FileKeyStore, n: int
) -> tuple[list[dict[str, Any]], list[bytes]]:
    """N sealed events in ingress: the same bytes both the baseline and the worker read."""
    sealer = Sealer(SENDER, keys)
    producer = kafka.producer("bench-load")
    await producer.start()
    events = _events(n, seed=1)
    payloads = []
    for e in events:
        s = sealer.seal(canonical_json(e), event_id=e["event_id"], recipient="worker",
                        schema=SCHEMA_EVENT, topic=ingress(SENDER))  # fmt: skip
        await producer.send(ingress(SENDER), s.value, key=e["event_id"].encode(), headers=s.headers)
        payloads.append(s.value)
    await producer.flush()
    await producer.stop()
    return events, payloads


async def _measure(
    admin: KafkaSettings, home: Path, n: int, rate: float, seconds: float
) -> dict[str, Any]:
    """Every phase in turn, each one's figures kept as soon as it has them. A phase that fails
    ends the run here, its error recorded as ``failed_phase`` beside the figures the earlier
    phases measured: the later phases rely on what the earlier ones left in the topics (the
    floor drains exactly the records they wrote), so they would time the wrong thing or wait."""
    out: dict[str, Any] = {"events": n}
    phase = ["setup"]
    try:
        await _phases(admin, home, n, rate, seconds, out, phase)
    except Exception as exc:  # noqa: BLE001  # the figures measured so far are still reported
        traceback.print_exc(file=sys.stderr)
        out["failed_phase"] = {"phase": phase[0], **error_summary(exc)}
    return out


async def _phases(
    admin: KafkaSettings,
    home: Path,
    n: int,
    rate: float,
    seconds: float,
    out: dict[str, Any],
    phase: list[str],
) -> None:
    policy, keys, admin, kafka, settings = await _prepare(admin, home, out)
    events, payloads = await _preload(kafka, keys, n)
    phase[0] = "baseline"
    raw_rate = await _baseline(kafka, ingress(SENDER), n)
    out["raw_aiokafka_passthrough_per_s"] = round(raw_rate)

    env = {**os.environ, "ACCORD_HOME": str(home), "ACCORD_KAFKA_BOOTSTRAP": admin.bootstrap,
           "ACCORD_KAFKA__CREDENTIALS_DIR": str(admin.credentials_dir),
           "ACCORD_KAFKA__SECURITY_PROTOCOL": admin.security_protocol.value,
           "ACCORD_KAFKA__PARTITIONS": str(PARTITIONS),
           # Synthetic keys made unencrypted above: the explicit opt-out, as tests have.
           "ACCORD_KEYSTORE__PROTECTION": "none"}  # fmt: skip
    log = home / "worker.log"
    metrics_port = free_port()
    phase[0] = "throughput"
    worker = _start_worker(env, log, metrics_port)
    offered = [0.0]
    try:
        pipeline_rate, cpu_per_event = await _drain([(worker, metrics_port)], n, log)
        out["pipeline_events_per_s"] = round(pipeline_rate)
        out["ratio_pipeline_to_raw"] = round(pipeline_rate / raw_rate, 4)
        out["worker_cpu_ms_per_event"] = round(cpu_per_event * 1000, 3)

        phase[0] = "latency"
        before = _probe.histograms(metrics_port)
        latencies = await _latency(settings, keys, rate, seconds, offered)
        split = _probe.split(before, _probe.histograms(metrics_port))
        lat = sorted(latencies)
        out.update({
            "offered_load_per_s": rate,
            "achieved_offered_load_per_s": round(offered[0], 1),
            "latency_samples": len(lat),
            "latency_p50_ms": round(statistics.median(lat) * 1000, 1) if lat else None,
            "latency_p99_ms": round(lat[int(len(lat) * 0.99) - 1] * 1000, 1) if lat else None,
            **split,
        })  # fmt: skip
    finally:
        if worker.poll() is None:  # its peak so far, even if a phase failed
            out["worker_peak_rss_mib"] = round(_probe.peak_rss_mib(worker.pid), 1)
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    # `accord policy impact` over the same ingress (the drained events and the latency run's),
    # each re-decided under two bundles: its rate, in events/s, against the worker's.
    phase[0] = "policy_impact"
    in_ingress = n + int(offered[0] * seconds)
    impact = {f"policy_impact_{k}_process_events_per_s": round(in_ingress / _impact_run(env, k))
              for k in (1, 2)}  # fmt: skip
    out.update(impact)
    out["ratio_policy_impact_to_pipeline"] = round(
        impact["policy_impact_1_process_events_per_s"] / pipeline_rate, 4
    )
    phase[0] = "two_workers"
    group = await _two_workers(kafka, keys, env, home, n)
    out.update(group)
    out["ratio_two_workers_to_one"] = round(group["two_workers_events_per_s"] / pipeline_rate, 4)
    out["ratio_cpu_per_event_two_workers_to_one"] = round(
        group["two_workers_cpu_ms_per_event"] / (cpu_per_event * 1000), 4
    )
    # Last, on the same broker: the loop alone, with every event's outputs precomputed.
    phase[0] = "kafka_floor"
    floor = await _floor.measure(
        kafka, _floor.templates(policy, keys, SENDER, events[:300]), source=ingress(SENDER),
        backlog=2 * n + int(rate * seconds), n=n, payloads=payloads[:500], rate=rate,
        seconds=seconds,
    )  # fmt: skip
    out.update(floor)
    out["ratio_kafka_floor_to_raw"] = round(floor["kafka_floor_events_per_s"] / raw_rate, 4)
    out["ratio_pipeline_to_kafka_floor"] = round(
        pipeline_rate / floor["kafka_floor_events_per_s"], 4
    )


async def _latency(
    settings: Settings, keys: FileKeyStore, rate: float, seconds: float, offered: list[float]
) -> list[float]:
    """Publish at a fixed rate through the SDK; the co-ordinating team opens each record."""
    events = _events(int(rate * seconds), seed=2)
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    done = asyncio.Event()
    listening = asyncio.Event()
    group = "sandwell-coord.bench-latency"
    # The throughput phase's records are not this phase's: the subscriber starts at the
    # topic's end, or it would first open thousands of old records and time that catch-up.
    await _start_at_end(_as(settings, "sandwell-coord"), deliver("sandwell-coord"), group)

    async def receive() -> None:
        async with Subscriber(
            "sandwell-coord",
            keys,
            _as(settings, "sandwell-coord"),
            group=group,
            # The run's own home: event ids repeat from run to run (seeded).
            replay_memory=default_replay_file(group, settings.home),
        ) as sub:
            await sub.poll(0.2)  # joined, with its partitions: publishing may begin
            listening.set()
            while not done.is_set() or len(latencies) < len(sent_at):
                for record in await sub.poll(0.2):
                    t = sent_at.get(record.message.event_id)  # type: ignore[union-attr]
                    if t is not None:
                        latencies.append(time.perf_counter() - t)
                if done.is_set() and time.perf_counter() - last[0] > 30:
                    break

    last = [time.perf_counter()]
    receiver = asyncio.create_task(receive())
    await listening.wait()
    async with Publisher(SENDER, keys, _as(settings, SENDER)) as pub:
        interval = 1 / rate
        start = next_at = time.perf_counter()
        # Each publish awaits Kafka's acknowledgement (several ms); awaiting them one by one
        # would cap the offered load far below the rate asked for. They run as tasks, so
        # events leave on schedule whatever the acknowledgements take.
        pending: list[asyncio.Task[Any]] = []
        for e in events:
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent_at[e["event_id"]] = time.perf_counter()
            pending.append(asyncio.create_task(pub.publish(e)))
            next_at += interval
        offered[0] = len(events) / (time.perf_counter() - start)
        await asyncio.gather(*pending)
    last[0] = time.perf_counter()
    done.set()
    await receiver
    return latencies


# A topic made moments ago on a busy machine can lag: until every partition has a leader in
# the metadata a client holds, asking for its offsets fails (aiokafka's StaleMetadata, retried
# within the request timeout, then KafkaTimeoutError). Both waits are bounded.
_LEADER_CHECKS = 10
_LEADER_CHECK_S = 1.0
_END_ATTEMPTS = 3


async def _partitions(kafka: KafkaClients, topic: str) -> list[int]:
    """``topic``'s partitions, from fresh metadata, once each of them has a leader."""
    admin = kafka.admin("bench-describe")
    await admin.start()
    try:
        for _ in range(_LEADER_CHECKS):
            described = await admin.describe_topics([topic])
            parts = described[0]["partitions"] if described else []
            if parts and all(p["leader"] >= 0 for p in parts):
                return sorted(p["partition"] for p in parts)
            await asyncio.sleep(_LEADER_CHECK_S)
    finally:
        await admin.close()
    raise RuntimeError(
        f"{topic} has no leader for every partition after {_LEADER_CHECKS} metadata checks"
    )


async def _start_at_end(kafka: KafkaClients, topic: str, group: str) -> None:
    """Commit ``group``'s offsets at ``topic``'s end now.

    For every partition the topic has: a topic made before this run (``make bench``'s
    bench_flags provisions the same bundle with the default count) keeps its own count, and
    asking for a partition it lacks fails as stale metadata would. A timeout asking for the
    ends is tried again with a new consumer, so fresh metadata, up to ``_END_ATTEMPTS`` times.
    """
    for attempt in range(1, _END_ATTEMPTS + 1):
        parts = [TopicPartition(topic, p) for p in await _partitions(kafka, topic)]
        consumer = kafka.consumer(client_id="bench-latency-start", group=group)
        await consumer.start()
        try:
            consumer.assign(parts)
            ends = await consumer.end_offsets(parts)
        except KafkaTimeoutError as exc:
            if attempt == _END_ATTEMPTS:
                raise
            print(f"bench_pipeline: {topic}'s end offsets, attempt {attempt}: {exc}; "
                  "asking again with fresh metadata", file=sys.stderr, flush=True)  # fmt: skip
        else:
            await consumer.commit({tp: int(o) for tp, o in ends.items()})
            return
        finally:
            await consumer.stop()


def run(
    ctx: Any = None, *, events: int = 5000, rate: float = 500.0, seconds: float = 20.0
) -> dict[str, Any]:
    """Run against ``ctx.admin``'s broker if given, else a broker of its own."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        admin = getattr(ctx, "admin", None)
        node = None
        if admin is None:
            cache = Path(os.environ.get("ACCORD_HOME") or Path.home() / ".cache" / "accord")
            node = EmbeddedKafka(
                home / "kafka", home=cache, port=free_port(), controller_port=free_port()
            )  # fmt: skip
            node.start()
            admin = node.client_settings()
        try:
            return asyncio.run(_measure(admin, home, events, rate, seconds))
        finally:
            if node is not None:
                node.stop()


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
