"""What the flag service says as it starts: the rules it runs, and whether another runs.

``flags_started`` names the party, the bundle's version and each rule's id, window and
condition (the bundle's own text: no child, no record), so an operator can tell from the log
which rules a running service applies; its ``/metrics`` has the version too
(``accord_desk_flags_policy_loaded``, :mod:`._flags_ops`).

One flag service per party (``._flags_app``): a second one would share the partitions of
both tables with the first, and faust writes its rebalances as plain-text lines into the
JSON log. Nothing stops it, but each service asks Kafka at start whether its consumer groups
already have members and, if so, warns (``flags_another_instance``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

import structlog

from broker.config import KafkaSettings
from broker.kafka import KafkaClients
from broker.policy import CompiledFlagRule
from broker.topics import desk_flags, desk_flags_reader

__all__ = ["busy_groups", "log_flags_started", "warn_if_another_instance"]

log = structlog.get_logger("accord.desk.flags")


def log_flags_started(party: str, version: str, rules: Sequence[CompiledFlagRule]) -> None:
    """One ``flags_started`` line: the party, the bundle version, each rule's id, window and
    condition (its thresholds), and whether it counts the household."""
    described = [
        {"id": r.id, "window": r.rule.window, "when": r.rule.when, "household": r.household}
        for r in rules
    ]
    log.info("flags_started", party=party, version=version, rules=described)


def busy_groups(responses: Iterable[Any]) -> list[str]:
    """The groups that have members, from aiokafka's ``describe_consumer_groups`` answers
    (each group ``(error_code, group_id, state, protocol_type, protocol, members, ...)``);
    a group Kafka answered with an error counts as empty: this is a warning, not a check."""
    busy = []
    for response in responses:
        for group in getattr(response, "groups", ()):
            error, group_id, _state, _type, _protocol, members = tuple(group)[:6]
            if error == 0 and members:
                busy.append(str(group_id))
    return sorted(busy)


async def warn_if_another_instance(kafka: KafkaSettings, party: str) -> list[str]:
    """Warn (``flags_another_instance``) when the flag service's consumer groups already have
    members: another service for ``party`` is running. The groups found busy; none when Kafka
    could not say (the service starts either way)."""
    groups = [desk_flags(party), desk_flags_reader(party)]
    admin: Any = KafkaClients(kafka).admin(f"{desk_flags(party)}-check")
    try:
        await admin.start()
        # One group a request: aiokafka 0.14 asks for two at once in a version whose answer it
        # then reads in another's format ("Buffer underrun"), and the look never answered.
        answers = [await admin.describe_consumer_groups([group]) for group in groups]
        busy = busy_groups(r for answer in answers for r in answer)
    except Exception as exc:  # noqa: BLE001  # a warning only: Kafka's answer is not needed
        # Kafka's own words (an address, a closed connection), never a record's.
        log.debug(
            "flags_instance_check_failed", party=party, error=type(exc).__name__, msg=str(exc)
        )
        return []
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
    if busy:
        log.warning(
            "flags_another_instance",
            party=party,
            groups=busy,
            hint="another flag service for this team is running, or one stopped within the "
            "last minute has not left yet: run one per team",
        )
    return busy
