"""One record never stops the worker: whatever it is, it ends quarantined or refused, audited."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from broker.audit import AuditKind, ChainWriter
from broker.envelope import Opener
from broker.errors import ConfigError
from broker.keys import FileKeyStore
from broker.pipeline._effects import Audit
from broker.pipeline._metrics import Metrics
from broker.pipeline._processor import (
    HEADERS_COPY_LIMIT,
    VALUE_COPY_LIMIT,
    Processor,
    build_processor,
)
from broker.pipeline._stages import Step, Verdict, Work, forward, run_chain
from broker.pipeline._state import WorkerState
from broker.pipeline._throttle import SenderBudget
from broker.policy import Policy
from broker.topics import QUARANTINE, deliver, ingress
from tests.unit.pipeline.conftest import AT, ENVELOPE
from tests.unit.pipeline.test_processor import CHILD_NHS, Run, incident, seal_as

# A producer batch: what the worker's transactional producer can send as one record.
PRODUCER_BATCH = 256 * 1024


class _Raises:
    def __init__(self, name: str, exc: BaseException) -> None:
        self.name = name
        self.exc = exc

    def __call__(self, work: Work) -> Step:  # noqa: ARG002  # the Stage protocol's signature
        raise self.exc


class _Notes:
    name = "notes"

    def __call__(self, work: Work) -> Step:  # noqa: ARG002  # the Stage protocol's signature
        return forward(Audit(AuditKind.RECEIVED, event_id="e1"))


def _work() -> Work:
    return Work(ingress("wmp"), 0, 9, b"value", [], AT)


def test_a_stage_that_raises_quarantines_the_record_and_logs_only_the_error_type() -> None:
    leak = ValueError(f"cannot parse {CHILD_NHS}")  # messages may quote the record
    with capture_logs() as logs:
        outcome = run_chain([_Notes(), _Raises("decide", leak)], _work())
    assert (outcome.verdict, outcome.reason, outcome.stage) == (
        Verdict.QUARANTINE, "stage-failed", "decide"
    )  # fmt: skip
    assert [type(e) for e in outcome.effects] == [Audit]  # what came before stands
    assert [entry["error"] for entry in logs if entry["event"] == "stage_failed"] == ["ValueError"]
    assert CHILD_NHS not in repr(logs)


@pytest.mark.parametrize("exc", [OSError("disk"), MemoryError(), ConfigError("no key")])
def test_a_platform_failure_in_a_stage_still_stops_the_worker(exc: BaseException) -> None:
    with pytest.raises(type(exc)):
        run_chain([_Raises("open", exc)], _work())


@pytest.fixture
def run(make_processor: Callable[..., Processor]) -> Run:
    return Run(make_processor())


def _held(run: Run, keys: FileKeyStore) -> dict[str, object]:
    [q] = run.on(QUARANTINE)
    held: dict[str, object] = json.loads(
        Opener("governance", keys).open_kafka(q.value, q.headers).payload
    )
    return held


def test_a_null_header_value_is_quarantined_as_malformed_and_kept_as_null(
    run: Run, pipeline_keys: FileKeyStore
) -> None:
    value, headers = seal_as(pipeline_keys, "wmp", incident(), topic=ingress("wmp"))
    out = run.processor.handle(ingress("wmp"), 0, 1, value, [*headers, ("x-null", None)], at=AT)
    run.out += out
    held = _held(run, pipeline_keys)
    assert held["reason"] == "malformed"
    assert held["stage"] == "read"
    assert ["x-null", None] in held["headers"]  # type: ignore[operator]
    assert [a.data["reason"] for a in run.audit(AuditKind.QUARANTINED)] == ["malformed"]


def test_the_quarantine_copy_keeps_the_records_kafka_key_bounded_and_a_null_one_as_null(
    run: Run, pipeline_keys: FileKeyStore
) -> None:
    """An ``unkeyed`` or ``wrong-partition`` record is told by its key (accord audit
    quarantine --open shows it)."""
    run.out += run.processor.handle(ingress("wmp"), 0, 1, b"junk", [], at=AT, key=b"k" * 2000)
    held = _held(run, pipeline_keys)
    assert base64.b64decode(str(held["key"])) == b"k" * 1024
    assert held["truncated"] is True
    run.out.clear()
    run.out += run.processor.handle(ingress("wmp"), 0, 2, b"junk", [], at=AT)
    held = _held(run, pipeline_keys)
    assert held["key"] is None
    assert held["truncated"] is False


def test_a_header_key_that_was_not_utf8_is_quarantined_with_its_bytes_escaped(
    run: Run, pipeline_keys: FileKeyStore
) -> None:
    value, headers = seal_as(pipeline_keys, "wmp", incident(), topic=ingress("wmp"))
    bad_key = b"\xff\xfex".decode("utf-8", "surrogateescape")  # as the tolerant reader reads it
    out = run.processor.handle(ingress("wmp"), 0, 1, value, [*headers, (bad_key, b"v")], at=AT)
    run.out += out
    held = _held(run, pipeline_keys)
    assert (held["reason"], held["stage"]) == ("undecodable-header", "read")
    assert ["\\xff\\xfex", "dg=="] in held["headers"]  # type: ignore[operator]
    assert run.on(deliver("sandwell-coord")) == []  # a valid envelope, all the same
    assert [a.data["reason"] for a in run.audit(AuditKind.QUARANTINED)] == ["undecodable-header"]


def test_an_oversized_record_is_quarantined_with_a_bounded_copy_and_its_full_digest(
    run: Run, pipeline_keys: FileKeyStore
) -> None:
    big = bytes(range(256)) * 4096  # 1 MiB, about what an ingress topic accepts
    headers = [(f"h{i}", b"v" * 1000) for i in range(200)]  # 200 kB of headers
    run.feed(ingress("wmp"), big, headers)
    [q] = run.on(QUARANTINE)
    assert len(q.value) + sum(len(k) + len(v) for k, v in q.headers) < PRODUCER_BATCH
    held = _held(run, pipeline_keys)
    assert held["truncated"] is True
    assert held["size"] == len(big)
    copied = held["headers"]
    assert isinstance(copied, list)
    assert 0 < len(copied) <= HEADERS_COPY_LIMIT // 1000
    assert base64.b64decode(str(held["value"])) == big[:VALUE_COPY_LIMIT]
    [audited] = run.audit(AuditKind.QUARANTINED)
    assert audited.data["digest"] == hashlib.sha256(big).hexdigest()[:32]
    assert audited.data["size"] == len(big)


@pytest.fixture
def own_keys(pipeline_keys: FileKeyStore, tmp_path: Path) -> FileKeyStore:
    """A copy of the pipeline's keystore that a test may revoke keys in."""
    shutil.copytree(pipeline_keys.path, tmp_path / "keys")
    return FileKeyStore(tmp_path / "keys")


def _processor(policy: Policy, keys: FileKeyStore) -> Processor:
    from prometheus_client import CollectorRegistry

    return build_processor(
        policy=policy, keys=keys, linkage_key=b"k" * 32, state=WorkerState(),
        chain=ChainWriter("worker:test", clock=lambda: AT), clock=lambda: AT,
        envelope=ENVELOPE, metrics=Metrics(CollectorRegistry()),
    )  # fmt: skip


def test_a_recipient_without_a_live_key_gets_a_refusal_that_says_so(
    project_policy: Policy, own_keys: FileKeyStore
) -> None:
    """The policy shares with sandwell-coord and the school; the school's key is revoked."""
    own_keys.revoke(own_keys.current_encryption_key("school-146201").key_id)
    run = Run(_processor(project_policy, own_keys))
    run.feed(ingress("wmp"), *seal_as(own_keys, "wmp", incident(), topic=ingress("wmp")))

    decided = {r.party: r.data for r in run.audit(AuditKind.DECIDED)}
    assert decided["school-146201"]["outcome"] == "not_shared"
    assert decided["school-146201"]["reason"] == "recipient-key-unavailable"
    assert decided["school-146201"]["fields_shared"] == []
    assert decided["school-146201"]["clause_ids"]  # what would have applied stays visible
    assert run.on(deliver("school-146201")) == []
    assert decided["sandwell-coord"]["outcome"] == "shared"
    assert len(run.on(deliver("sandwell-coord"))) == 1
    assert [r.party for r in run.audit(AuditKind.DELIVERED)] == ["sandwell-coord"]
    assert run.on(QUARANTINE) == []


def test_without_a_governance_key_a_quarantine_is_still_audited(
    project_policy: Policy, own_keys: FileKeyStore
) -> None:
    own_keys.revoke(own_keys.current_encryption_key("governance").key_id)
    run = Run(_processor(project_policy, own_keys))
    run.feed(ingress("wmp"), b"\x00garbage", [])
    assert run.on(QUARANTINE) == []
    [audited] = run.audit(AuditKind.QUARANTINED)
    assert (audited.data["reason"], audited.data["held"]) == ("malformed", False)


def test_without_its_own_signing_key_the_worker_stops_with_one_clear_error(
    project_policy: Policy, own_keys: FileKeyStore
) -> None:
    processor = _processor(project_policy, own_keys)
    Run(processor).feed(ingress("wmp"), *seal_as(own_keys, "wmp", incident(), topic=ingress("wmp")))
    own_keys.revoke(own_keys.current_signing_key("worker").info.key_id)
    with pytest.raises(ConfigError, match="no live signing key"):
        processor.checkpoint()
    with pytest.raises(ConfigError, match="no live signing key"):
        processor.handle(ingress("wmp"), 0, 5, b"\x00garbage", [], at=AT)


def test_a_sender_budget_allows_a_burst_then_its_rate() -> None:
    budget = SenderBudget(rate=10, burst=100)
    assert budget.spend("wmp", 100, now=0.0) == 0.0
    assert budget.spend("wmp", 20, now=0.0) == pytest.approx(2.0)  # 20 over, at 10/s
    assert budget.spend("swbh", 50, now=0.0) == 0.0  # each sender has its own
    assert budget.spend("wmp", 0, now=2.0) == 0.0  # refilled back to zero
    assert budget.spend("wmp", 0, now=1000.0) == 0.0
    assert budget.spend("wmp", 100, now=1000.0) == 0.0  # capped at the burst, not beyond
    assert budget.spend("wmp", 1, now=1000.0) > 0
    assert SenderBudget(rate=0, burst=1).spend("wmp", 10**9, now=0.0) == 0.0  # no limit
