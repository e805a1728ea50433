"""``accord desk reset-offsets``, with fake Kafka clients: a desk still running is refused
before anything moves, the replay memory is set back before any group's offsets move and put
back if Kafka then takes none, a failure after one group moved says which and to run it again,
a missing memory is refused unless ``--no-replay-memory`` says the desk never kept one, and an
access refusal is said as one, not as a desk still running."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from aiokafka import TopicPartition
from aiokafka.errors import (
    CommitFailedError,
    GroupAuthorizationFailedError,
    KafkaError,
)

import broker.cli._common as common
from broker.kafka import _errors
from broker.sdk import SqliteReplayMemory, default_replay_file
from broker.topics import deliver, desk_flags
from tests.unit.audit.conftest import Run

PARTY = "sandwell-coord"
DESK, FLAGS = f"{PARTY}.desk", f"{PARTY}.desk-flags"


class FakeKafka:
    """Kafka with the desk's two topics (one partition each, earliest offset 5) that records
    each commit, and raises ``refuse[group]`` instead of committing for that group. Its admin
    describes each group with ``members[group]`` members (none unless given), or answers it
    with ``errors[group]`` (a Kafka error code)."""

    principal = PARTY

    def __init__(
        self,
        refuse: dict[str, KafkaError] | None = None,
        *,
        members: dict[str, int] | None = None,
        errors: dict[str, int] | None = None,
    ) -> None:
        self.refuse = refuse or {}
        self.members = members or {}
        self.errors = errors or {}
        self.commits: list[tuple[str, dict[TopicPartition, int]]] = []
        self.described: list[str] = []

    def consumer(self, *, client_id: str, group: str | None = None) -> Any:  # noqa: ARG002
        return _Consumer(self, group)

    def admin(self, client_id: str) -> Any:  # noqa: ARG002
        return _Admin(self)


class _Admin:
    def __init__(self, kafka: FakeKafka) -> None:
        self.kafka = kafka

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def describe_consumer_groups(self, groups: list[str]) -> list[Any]:
        """As aiokafka's: the raw DescribeGroups answers, each group a tuple."""
        self.kafka.described += groups
        members = {g: [("member-1", "client", "host", b"", b"")] * self.kafka.members.get(g, 0)
                   for g in groups}  # fmt: skip
        return [
            SimpleNamespace(groups=[
                (self.kafka.errors.get(g, 0), g, "Stable" if members[g] else "Empty",
                 "consumer", "range" if members[g] else "", members[g], -2147483648)
                for g in groups
            ])
        ]  # fmt: skip


class _Consumer:
    def __init__(self, kafka: FakeKafka, group: str | None) -> None:
        self.kafka, self.group = kafka, group
        self.subscribed: list[str] = []

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def topics(self) -> set[str]:
        return {deliver(PARTY), desk_flags(PARTY)}

    def subscribe(self, topics: list[str]) -> None:
        self.subscribed = topics

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(t, 0) for t in self.subscribed}

    def assign(self, tps: list[TopicPartition]) -> None: ...

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(tps, 5)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        assert self.group is not None
        if self.group in self.kafka.refuse:
            raise self.kafka.refuse[self.group]
        self.kafka.commits.append((self.group, offsets))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    return tmp_path


def _memory_past(home: Path, end: int = 40) -> Path:
    """The desk's replay memory: a record opened at offset 10, the group committed to ``end``."""
    path = default_replay_file(DESK, home)
    memory = SqliteReplayMemory(path, group=DESK)
    try:
        assert memory.admit("e-10", topic=deliver(PARTY), partition=0, offset=10)
        memory.committed(deliver(PARTY), 0, end)
    finally:
        memory.close()
    return path


def _admits_again(path: Path) -> bool:
    memory = SqliteReplayMemory(path, group=DESK)
    try:
        return memory.admit("e-10", topic=deliver(PARTY), partition=0, offset=10)
    finally:
        memory.close()


def _use(monkeypatch: pytest.MonkeyPatch, kafka: FakeKafka) -> None:
    monkeypatch.setattr(common, "kafka_as", lambda _settings, _principal: kafka)


def test_the_memory_is_set_back_before_the_groups_then_both_groups(
    home: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Run
) -> None:
    path = _memory_past(home)
    kafka = FakeKafka()
    _use(monkeypatch, kafka)
    seen_by_first_commit: list[bool] = []
    commit = _Consumer.commit

    async def watching(self: _Consumer, offsets: dict[TopicPartition, int]) -> None:
        seen_by_first_commit.append(_admits_again(path))
        await commit(self, offsets)

    monkeypatch.setattr(_Consumer, "commit", watching)
    code, out, err = run_cli(["desk", "reset-offsets", "--as", PARTY])
    assert (code, err) == (0, "")
    assert seen_by_first_commit[0]  # the memory was already set back
    assert [g for g, _ in kafka.commits] == [DESK, FLAGS]
    assert kafka.commits[0][1] == {TopicPartition(deliver(PARTY), 0): 5}
    assert out.splitlines() == [
        f"{DESK}: replay memory {path} set back to partition 0: 5",
        f"{DESK}: reads {deliver(PARTY)} again from partition 0: 5",
        f"{FLAGS}: reads {desk_flags(PARTY)} again from partition 0: 5",
        f"start {PARTY}'s desk: what it reads again and already holds is not stored twice",
    ]


def test_a_flags_group_refused_after_the_desks_moved_says_which_moved_and_to_run_it_again(
    home: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Run
) -> None:
    path = _memory_past(home)
    kafka = FakeKafka(refuse={FLAGS: CommitFailedError("the group has a member")})
    _use(monkeypatch, kafka)
    code, out, err = run_cli(["desk", "reset-offsets", "--as", PARTY])
    assert code != 0
    assert [g for g, _ in kafka.commits] == [DESK]
    assert _admits_again(path)  # the moved group's memory went back with it, before it
    assert f"stop {PARTY}'s desk first" in err
    assert f"{DESK} set back already, {FLAGS} not: run it again before starting the desk" in err
    assert len(err.strip().splitlines()) == 1
    assert f"start {PARTY}'s desk" not in out


def test_a_memory_that_cannot_be_opened_moves_no_group(
    home: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Run
) -> None:
    path = default_replay_file(DESK, home)
    path.parent.mkdir(parents=True)
    memory = SqliteReplayMemory(path, group="someone-else.desk")  # not this group's memory
    memory.close()
    kafka = FakeKafka()
    _use(monkeypatch, kafka)
    code, _out, err = run_cli(["desk", "reset-offsets", "--as", PARTY])
    assert code != 0
    assert f"replay memory {path} belongs to consumer group someone-else.desk" in err
    assert kafka.commits == []


def test_a_missing_memory_is_refused_before_anything_moves(
    home: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Run
) -> None:
    kafka = FakeKafka()
    _use(monkeypatch, kafka)
    code, _out, err = run_cli(["desk", "reset-offsets", "--as", PARTY])
    path = default_replay_file(DESK, home)
    assert code != 0
    assert err.startswith(
        f"accord: error: no replay memory at {path}: run this where the desk runs"
    )
    assert "--no-replay-memory" in err
    assert kafka.commits == []
    assert not path.exists()  # not made by looking


def test_no_replay_memory_sets_the_groups_back_for_a_desk_that_never_kept_one(
    home: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Run
) -> None:
    kafka = FakeKafka()
    _use(monkeypatch, kafka)
    code, out, err = run_cli(["desk", "reset-offsets", "--as", PARTY, "--no-replay-memory"])
    assert (code, err) == (0, "")
    assert [g for g, _ in kafka.commits] == [DESK, FLAGS]
    assert "replay memory" not in out
    assert not default_replay_file(DESK, home).exists()


def test_an_access_refusal_is_said_as_one_not_as_a_desk_still_running(
    home: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Run
) -> None:
    _memory_past(home)
    kafka = FakeKafka(refuse={DESK: GroupAuthorizationFailedError(DESK)})
    _use(monkeypatch, kafka)
    code, _out, err = run_cli(["desk", "reset-offsets", "--as", PARTY])
    assert code != 0
    assert f"Kafka refused {PARTY} the consumer group {DESK}" in err
    assert "stop" not in err
    assert kafka.commits == []


def test_a_running_desk_is_refused_in_one_line_before_the_memory_or_any_group_moves(
    home: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Run
) -> None:
    """It used to set the memory back, then fail at the first commit: half reset."""
    path = _memory_past(home)
    kafka = FakeKafka(members={DESK: 1})
    _use(monkeypatch, kafka)
    code, out, err = run_cli(["desk", "reset-offsets", "--as", PARTY])
    assert (code, out) == (1, "")
    assert kafka.described == [DESK, FLAGS]
    assert err.startswith(f"accord: error: {DESK} has 1 member(s): stop {PARTY}'s desk first")
    assert err.endswith("Nothing was changed\n")
    assert len(err.splitlines()) == 1
    assert kafka.commits == []
    assert not _admits_again(path)  # the memory's mark is where it was


def test_a_running_flag_reader_is_refused_too(
    home: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Run
) -> None:
    path = _memory_past(home)
    kafka = FakeKafka(members={FLAGS: 2})
    _use(monkeypatch, kafka)
    code, _out, err = run_cli(["desk", "reset-offsets", "--as", PARTY])
    assert code != 0
    assert f"{FLAGS} has 2 member(s): stop {PARTY}'s desk first" in err
    assert kafka.commits == []
    assert not _admits_again(path)


def test_a_group_kafka_will_not_describe_is_refused_as_that_before_anything_moves(
    home: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Run
) -> None:
    path = _memory_past(home)
    kafka = FakeKafka(errors={DESK: GroupAuthorizationFailedError.errno})
    _use(monkeypatch, kafka)
    code, _out, err = run_cli(["desk", "reset-offsets", "--as", PARTY])
    assert code != 0
    assert f"Kafka refused {PARTY} the consumer group {DESK}" in err
    assert kafka.commits == []
    assert not _admits_again(path)


def test_a_desks_group_kafka_refuses_after_the_check_leaves_the_memory_as_it_was(
    home: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Run
) -> None:
    """A desk started between the check and the commit: the memory, set back first, is put
    back, so nothing was changed at all."""
    path = _memory_past(home)
    kafka = FakeKafka(refuse={DESK: CommitFailedError("the group has a member")})
    _use(monkeypatch, kafka)
    code, out, err = run_cli(["desk", "reset-offsets", "--as", PARTY])
    assert (code, out) == (1, "")  # no "replay memory ... set back" for what was put back
    assert f"stop {PARTY}'s desk first" in err
    assert kafka.commits == []
    assert not _admits_again(path)
    memory = SqliteReplayMemory(path, group=DESK)
    try:  # the mark is back at 40, not merely above 10
        assert memory.committed_up_to(deliver(PARTY), 0) == 40
    finally:
        memory.close()


# -- docs/deployment.md's one-off Job, on Kubernetes ----------------------------------------


def _documented_jq() -> str:
    """The jq program of docs/deployment.md's ``once`` (Restore), between its quotes."""
    text = (Path(__file__).resolve().parents[3] / "docs" / "deployment.md").read_text()
    body = text[text.index("once() {") :]
    return body[body.index("'") + 1 : body.index("' \\\n    | kubectl")]


@pytest.mark.skipif(shutil.which("jq") is None, reason="the documented recipe needs jq")
def test_the_documented_job_runs_reset_offsets_as_the_rendered_desk_on_its_own_claim() -> None:
    """The Job built from the rendered desk Deployment has its image, environment, Secrets
    and claim, runs ``desk reset-offsets`` once, and never restarts."""
    from broker.deploy import deployment
    from broker.deploy._kubernetes import kubernetes_files
    from broker.policy import load_bundle

    bundle = Path("policies")
    dep = deployment(load_bundle(bundle), bundle, brokers=3, partitions=3,
                     image="accord-broker:test", desks=(PARTY,))  # fmt: skip
    rendered = yaml.safe_load(
        kubernetes_files(dep)[f"kubernetes/accord/desk-{PARTY}/deployment.yaml"]
    )
    run = f"desk reset-offsets --as {PARTY}"
    argv = ["jq", "--arg", "job", "j", "--arg", "run", run, "--arg", "heads", "", _documented_jq()]
    job = json.loads(subprocess.run(argv, input=json.dumps(rendered), capture_output=True,
                                    text=True, check=True).stdout)  # fmt: skip
    pod, desk = job["spec"]["template"]["spec"], rendered["spec"]["template"]["spec"]
    assert job["kind"] == "Job"
    assert pod["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] == 0
    [container] = pod["containers"]
    assert container["args"] == ["desk", "reset-offsets", "--as", PARTY]
    assert (container["image"], container["env"]) == (
        desk["containers"][0]["image"],
        desk["containers"][0]["env"],
    )
    assert pod["volumes"] == desk["volumes"]  # the secrets, the keystore, the desk's claim
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert claims == [f"accord-desk-{PARTY}"]
    assert "readinessProbe" not in container


def test_the_command_ends_while_a_consumer_is_still_closing(
    home: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Run
) -> None:
    """A consumer's close over TLS can wait 30 s for a broker that never answers its
    close_notify: the command does not wait for it (``broker.kafka.stop_bounded``)."""
    monkeypatch.setattr(_errors, "CLOSE_WAIT_S", 0.05)

    async def slow_to_close(self: _Consumer) -> None:
        await asyncio.sleep(3)  # for ever, in effect: the five added up fail the test

    monkeypatch.setattr(_Consumer, "stop", slow_to_close)
    kafka = FakeKafka()
    _use(monkeypatch, kafka)
    began = time.monotonic()
    code, _out, err = run_cli(["desk", "reset-offsets", "--as", PARTY, "--no-replay-memory"])
    assert (code, err) == (0, "")
    assert [g for g, _ in kafka.commits] == [DESK, FLAGS]
    assert time.monotonic() - began < 5  # five consumers, each left closing after 0.05 s
