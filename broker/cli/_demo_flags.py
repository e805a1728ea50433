"""The demo's flag step: the co-ordinating team's flag service, and one scripted child's flag.

The demo starts ``accord desk flags --as TEAM`` beside the worker (a separate process, as a
team would run it, with the team's own key and Kafka login). Before the scripted referral,
an agency reports two concerns about one synthetic child; the flag service raises a flag
over them, and the referral loop waits for it on ``accord.desk.TEAM.flags``, reading as the
team, and prints the rule and the records it names (ids only, never the child).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from broker.config import Settings
from broker.desk import Flag
from broker.kafka import KafkaClients, translated
from broker.policy import Policy
from broker.topics import desk_flags

__all__ = ["FlagServiceProcess", "flag_source", "wait_for_flag"]

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
        return env

    async def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "broker", "desk", "flags", "--as", self.team,
                "--policies", str(self.settings.policies),
                env=self._env(), stdout=out, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip

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


async def wait_for_flag(
    kafka: KafkaClients, team: str, child: str, *, within: float
) -> Flag | None:
    """The first flag for ``child`` (a desk child key) on the team's flags topic, read as
    the team, or None if none comes ``within`` seconds."""
    topic = desk_flags(team)
    # No group: every partition, from the beginning (the consumer's default reset).
    consumer = kafka.consumer(
        topic, client_id=f"{team}-demo-flags", isolation_level="read_uncommitted"
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    async with translated(f"reading {topic}"):
        await consumer.start()
        try:
            while loop.time() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for msg in (m for msgs in batch.values() for m in msgs):
                    if msg.value is None:
                        continue
                    try:
                        flag = Flag.model_validate_json(msg.value)
                    except ValueError:
                        continue  # not a desk-flag.v1: not the child's flag either
                    if flag.child == child:
                        return flag
        finally:
            await consumer.stop()
    return None
