"""The demo's flag step: the co-ordinating team's flag service, and one scripted child's flag.

The demo starts ``accord desk flags --as TEAM`` beside the worker (a separate process, as a
team would run it, with the team's own key and Kafka login). Before the scripted referral,
an agency reports two concerns about one synthetic child; the flag service raises a flag
over them, and the referral loop waits for it on ``accord.desk.TEAM.flags``, reading as the
team, and prints the rule and the records it names (ids only, never the child).

The second concern is sent only once the service holds the first (its window table's
changelog has the child's key): a record that reaches the desk after a later one sees only
its own window (docs/policy-language.md, "What exactly fires"), and the two records travel
on partitions of their own (keyed by random event ids), so sent back to back they may reach
a service still starting in either order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from broker.cli._desk_flags import flags_datadir
from broker.config import Settings
from broker.desk import Flag
from broker.kafka import KafkaClients, stop_bounded, translated
from broker.policy import Policy
from broker.topics import desk_flags, desk_flags_internal

__all__ = ["FlagServiceProcess", "flag_source", "wait_for_flag", "wait_until_held"]

_STOP_S = 20.0


def flag_source(policy: Policy, team: str) -> tuple[str, str] | None:
    """(agency, event type) of the first approved clause sharing with ``team`` without
    consent and sharing categories: what the scripted child's concerns are sent as."""
    for agreement in policy.bundle.agreements:
        if agreement.status != "approved":
            continue
        for clause in agreement.clauses:
            if (
                team in clause.to
                and clause.consent == "not_required"
                and "event.categories" in clause.share
                and clause.from_
                and clause.event_types
            ):
                return clause.from_[0], clause.event_types[0]
    return None


@dataclass
class FlagServiceProcess:
    """``accord desk flags --as TEAM`` as a child process, logging to ``log``."""

    settings: Settings
    team: str
    # The demo's own passphrase file, when it made one (``_demo_keys``).
    passphrase_file: Path | None = None
    proc: asyncio.subprocess.Process | None = None

    @property
    def log(self) -> Path:
        return self.settings.home / "desk" / self.team / "flags.log"

    def _env(self) -> dict[str, str]:
        # The demo's own Kafka (its bootstrap, security and logins come from the running
        # embedded broker, not from the environment the demo was started in).
        kafka = self.settings.kafka
        env = {
            **os.environ,
            "ACCORD_HOME": str(self.settings.home),
            "ACCORD_KAFKA__BOOTSTRAP": kafka.bootstrap,
            "ACCORD_KAFKA__SECURITY_PROTOCOL": kafka.security_protocol.value,
        }
        if kafka.credentials_dir is not None:
            env["ACCORD_KAFKA__CREDENTIALS_DIR"] = str(kafka.credentials_dir)
        if self.passphrase_file is not None:
            env["ACCORD_KEYSTORE__PASSPHRASE_FILE"] = str(self.passphrase_file)
        return env

    async def start(self) -> None:
        flags_datadir(self.settings.home, self.team)  # the log's folder too: 0700
        # The service's log names the team's records and flags: the team's alone, 0600.
        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "ab") as out:
            os.fchmod(fd, 0o600)  # whatever the umask, and a log an earlier demo left open
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "broker", "desk", "flags", "--as", self.team,
                "--policies", str(self.settings.policies),
                env=self._env(), stdout=out, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip

    def status(self) -> str:
        """What to look at when the service is slow to answer, for the terminal: whether it
        is still running, and its log only when the log has something in it (it logs each
        flag it raises and each warning: empty while it starts, however slowly)."""
        try:
            logged = self.log.stat().st_size > 0
        except OSError:
            logged = False
        where = f"its log: {self.log}" if logged else "it has logged nothing yet"
        if self.proc is None:
            return "the flag service was not started"
        if self.proc.returncode is not None:
            return f"the flag service has exited (status {self.proc.returncode}); {where}"
        return f"the flag service is still running; {where}"

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), timeout=_STOP_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()


async def _first_match(
    kafka: KafkaClients,
    topic: str,
    match: Callable[[bytes | None, bytes | None], Flag | bool | None],
    *,
    within: float,
) -> Flag | bool | None:
    """The first truthy ``match(key, value)`` over ``topic``, read as the client's party
    from the beginning of every partition (no group), or None after ``within`` seconds."""
    consumer = kafka.consumer(topic, client_id=f"{topic}-demo", isolation_level="read_uncommitted")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    async with translated(f"reading {topic}"):
        await consumer.start()
        try:
            while loop.time() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for msg in (m for msgs in batch.values() for m in msgs):
                    found = match(msg.key, msg.value)
                    if found:
                        return found
        finally:
            await stop_bounded(consumer)
    return None


async def wait_until_held(kafka: KafkaClients, team: str, child: str, *, within: float) -> bool:
    """Whether, within ``within`` seconds, the team's flag service holds a record about
    ``child`` (a desk child key): a write under that key to its window table's changelog."""
    changelog = desk_flags_internal(team)[0]
    # faust writes a table's keys as JSON; a None value would be a deletion.
    wanted = json.dumps(child).encode()
    found = await _first_match(
        kafka, changelog, lambda k, v: k == wanted and v is not None, within=within
    )
    return found is True


async def wait_for_flag(
    kafka: KafkaClients, team: str, child: str, *, within: float
) -> Flag | None:
    """The first flag for ``child`` (a desk child key) on the team's flags topic, read as
    the team, or None if none comes ``within`` seconds."""

    def flag_for_child(_key: bytes | None, value: bytes | None) -> Flag | None:
        if value is None:
            return None
        try:
            flag = Flag.model_validate_json(value)
        except ValueError:
            return None  # not a desk-flag.v1: not the child's flag either
        return flag if flag.child == child else None

    found = await _first_match(kafka, desk_flags(team), flag_for_child, within=within)
    return found if isinstance(found, Flag) else None
