"""``accord desk flags --as PARTY``: run the party's flag service (a faust-streaming worker)."""

from __future__ import annotations

import enum
import os
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from broker._private import make_private_folders
from broker.cli._common import keystore
from broker.cli._loop import run
from broker.config import load_settings
from broker.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from broker.config import KafkaSettings, OpsEndpoint
    from broker.policy import Policy

As = Annotated[str, typer.Option("--as", help="The party (a co-ordinating team) you run as.")]
Policies = Annotated[
    Path | None,
    typer.Option(help="Policy bundle folder (default: ACCORD_POLICIES, else policies/ here)."),
]


class Level(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    DEBUG = "debug"


LogLevel = Annotated[Level, typer.Option(help="faust's log level.")]


def register(desk: typer.Typer) -> None:
    @desk.command("flags")
    def flags(
        party: As,
        *,
        policies: Policies = None,
        loglevel: LogLevel = Level.WARNING,
    ) -> None:
        """Raise flags.yaml's flags over the party's deliveries, on accord.desk.PARTY.flags."""
        import faust

        from broker.cli._logging import configure_logging
        from broker.desk import (
            FlagServiceOptions,
            build_flags_app,
            desk_linkage_key,
            flags_ops,
            log_flags_started,
            sighup_ignored,
        )
        from broker.kafka import client_settings
        from broker.policy import Policy

        # Whatever this process writes, faust and its stores included, is the party's alone:
        # a table's changelog cache holds children's keys and windows. The process is the
        # service's, so the umask stays.
        os.umask(0o077)
        # The service's own events as JSON lines on stderr, as every long-running command
        # writes them; faust keeps its own logging at --loglevel.
        configure_logging("info", library_logs=False)
        settings = load_settings()
        policy = Policy.load(policies or settings.policies)
        check_flags_party(policy, party)
        if not policy.flag_rules:
            raise UsageError("the policy bundle has no flag rules (flags.yaml)")
        # Before Kafka and faust: a port in use is one line, not faust's start-up traceback.
        check_ops_port(settings.desk)
        keys = keystore(settings, party)
        # Read, never made: enrolment makes it (see broker.keys._desk_linkage).
        linkage_secret = desk_linkage_key(keys, party=party)
        kafka = client_settings(settings, party)
        # faust reports Kafka being down, or a topic missing, as pages of its own traceback:
        # both are checked first, and said in one line. The topics' settings say how long
        # withdrawal markers must be kept (broker.desk._withdrawn_keep).
        keep = run(_preflight(kafka, party))
        opts = FlagServiceOptions(
            party=party,
            kafka=kafka,
            keystore=keys,
            rules=policy.flag_rules,
            linkage_secret=linkage_secret,
            datadir=flags_datadir(settings.home, party),
            # As provisioning created its topics (the changelog is co-partitioned).
            partitions=kafka.partitions,
            withdrawn_keep=keep,
            withdrawn_recheck=timedelta(minutes=settings.desk.flags_recheck_minutes),
        )
        app = build_flags_app(opts)
        # Not redirected: faust would log each line written to stdout or stderr as a WARNING,
        # the service's info lines included, and alerts count warnings.
        # /metrics, /livez and /readyz on ACCORD_DESK__METRICS_HOST/PORT (none unless set),
        # started by the worker before the app and stopped after it.
        ops = flags_ops(app, settings.desk, kafka, opts.counts, version=policy.version)
        worker = faust.Worker(app, ops, loglevel=loglevel.value, quiet=True, redirect_stdouts=False)
        # faust's start-up spinner writes cursor escapes even when stdout is a file, and they
        # would corrupt the first JSON line of the log.
        worker.spinner = None
        log_flags_started(party, policy.version, policy.flag_rules)
        # Its windows were built by the bundle it started with: no reload, and no death by
        # the signal either (docs/operations.md tells operators to send it to the worker).
        with sighup_ignored("flags_sighup_ignored", party=party):
            worker.execute_from_commandline()


#: A desk's kinds, as the refusal names them.
_KINDS = {"hub": "a hub", "school": "a school"}


def check_flags_party(policy: Policy, party: str) -> None:
    """A one-line ``UsageError`` unless ``party`` may run a flag service: a recipient that
    may run a desk (``check_desk_party``) and a co-ordinating team, the only kind
    provisioning makes flag topics for (``broker.provision``)."""
    from broker.desk import check_desk_party

    kind = check_desk_party(policy, party)
    if kind != "coordinating_team":
        raise UsageError(
            f"flag services are for co-ordinating teams; {party} is {_KINDS.get(kind, kind)}"
        )


def check_ops_port(endpoint: OpsEndpoint) -> None:
    """A one-line ``UsageError`` when the ops server's port cannot be listened on (none set,
    or 0: nothing to check). Said before faust starts: the server binds inside faust's
    start-up, which would print its own traceback around the error."""
    from broker.cli._demo_hints import check_port

    if endpoint.metrics_port is not None:
        hint = "set ACCORD_DESK__METRICS_PORT to a free port, or stop what holds it"
        check_port(endpoint.metrics_host, endpoint.metrics_port, hint=hint)


def flags_datadir(home: Path, party: str) -> Path:
    """``<home>/desk/<party>/flags``, the service's folder, made if need be: every folder
    made here 0700 (``home`` itself may be shared, and an existing one is left as it is), and
    the party's two tightened to 0700 if an earlier Accord left them open (it made them 0755).
    ``ConfigError`` when that cannot be done."""
    party_dir = home / "desk" / party
    datadir = party_dir / "flags"
    try:
        make_private_folders(datadir)
        for folder in (party_dir, datadir):
            if folder.stat().st_mode & 0o077:
                folder.chmod(0o700)
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"cannot make the flag service's folder {datadir} private: {why}"
        ) from None
    return datadir


async def _preflight(kafka: KafkaSettings, party: str) -> timedelta | None:
    from broker.desk import warn_if_another_instance, withdrawn_keep
    from broker.kafka import KafkaClients, missing_topics
    from broker.topics import deliver, desk_flags, desk_flags_internal

    needed = [deliver(party), desk_flags(party), *desk_flags_internal(party)]
    client_id = f"{desk_flags(party)}-check"
    if missing := await missing_topics(KafkaClients(kafka), needed, client_id=client_id):
        raise ConfigError(
            f"the flag service's topic {missing[0]} does not exist (or is not {party}'s): run "
            "'accord kafka provision --policies DIR' as the admin"
        )
    keep = await withdrawn_keep(kafka, party)
    await warn_if_another_instance(kafka, party)
    return keep
