"""The flag service's keep for withdrawal markers, from the real topics' settings: the
provisioned topics read as the party itself (its own grant), topics kept longer than
provisioning keeps them read as the admin, and a retention raised while the service runs
found at its next reading."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from broker.desk import withdrawn_keep
from broker.desk._withdrawn import KEEP
from broker.desk._withdrawn_keep import SETTINGS, KeepWatch, read_keep
from broker.kafka import topic_configs
from broker.policy import load_bundle
from broker.topics import deliver, desk_flags_internal
from tests.kafka_helpers import admin_settings, clients, create_topics, provisioned, settings_as

POLICIES = Path(__file__).resolve().parents[3] / "policies"
DAY_MS = 24 * 3600 * 1000
pytestmark = pytest.mark.kafka


def _flag_topics(party: str) -> list[str]:
    _, bychild, _, byhousehold = desk_flags_internal(party)
    return [deliver(party), bychild, byhousehold]


async def test_a_provisioned_teams_topics_read_as_the_team_keep_markers_90_days(
    kafka_bootstrap: str,
) -> None:
    """Effective values: segment.ms, which provisioning never sets, is the broker's."""
    if admin_settings(kafka_bootstrap).credentials_dir is None:
        pytest.skip("a cluster without logins has no grants to test")
    provisioned(kafka_bootstrap, load_bundle(POLICIES))
    team = settings_as(kafka_bootstrap, "sandwell-coord")
    names = _flag_topics("sandwell-coord")
    configs = await topic_configs(clients(kafka_bootstrap, "sandwell-coord"), names, SETTINGS,
                                  client_id="test-keep")  # fmt: skip
    assert configs == {
        names[0]: {"retention.ms": str(30 * DAY_MS), "segment.ms": str(7 * DAY_MS),
                   "cleanup.policy": "delete"},
        names[1]: {"retention.ms": str(7 * DAY_MS), "segment.ms": str(7 * DAY_MS),
                   "cleanup.policy": "delete"},
        names[2]: {"retention.ms": str(7 * DAY_MS), "segment.ms": str(7 * DAY_MS),
                   "cleanup.policy": "delete"},
    }  # fmt: skip
    assert await withdrawn_keep(team, "sandwell-coord") == KEEP
    # Another team's topics are not this team's to read: unknown, so markers kept for good.
    other = await topic_configs(clients(kafka_bootstrap, "sandwell-coord"),
                                _flag_topics("wolverhampton-mash"), SETTINGS,
                                client_id="test-keep")  # fmt: skip
    assert set(other.values()) == {None}


async def test_topics_kept_longer_keep_markers_longer_and_for_good_when_infinite(
    kafka_bootstrap: str,
) -> None:
    """A delivery topic raised to 120 days (provisioning leaves a topic it finds alone)."""
    party = f"t-{uuid.uuid4().hex[:8]}"
    names = _flag_topics(party)
    await create_topics(kafka_bootstrap, [names[0]], config={"retention.ms": str(120 * DAY_MS)})
    await create_topics(kafka_bootstrap, names[1:], config={"retention.ms": str(7 * DAY_MS)})
    admin = admin_settings(kafka_bootstrap)
    assert await withdrawn_keep(admin, party) == KEEP + timedelta(days=90)

    forever = f"t-{uuid.uuid4().hex[:8]}"
    names = _flag_topics(forever)
    await create_topics(kafka_bootstrap, names[:2], config={"retention.ms": str(7 * DAY_MS)})
    await create_topics(kafka_bootstrap, names[2:], config={"retention.ms": "-1"})
    assert await withdrawn_keep(admin, forever) is None


async def test_a_retention_raised_while_the_service_runs_is_found_at_the_next_reading(
    kafka_bootstrap: str,
) -> None:
    party = f"t-{uuid.uuid4().hex[:8]}"
    names = _flag_topics(party)
    await create_topics(kafka_bootstrap, [names[0]], config={"retention.ms": str(30 * DAY_MS)})
    await create_topics(kafka_bootstrap, names[1:], config={"retention.ms": str(7 * DAY_MS)})
    admin = admin_settings(kafka_bootstrap)
    changes: list[timedelta | None] = []
    watch = KeepWatch(lambda: read_keep(admin, party), changes.append, KEEP)
    await watch.check()
    assert changes == []
    raised = {"retention.ms": str(120 * DAY_MS)}
    kafka_admin = clients(kafka_bootstrap).admin("test-keep-raise")
    await kafka_admin.start()
    try:
        await kafka_admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, names[0], raised)]
        )
    finally:
        await kafka_admin.close()
    await watch.check()
    assert changes == [KEEP + timedelta(days=90)]
