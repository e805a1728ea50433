"""What a bundle needs from Kafka (least privilege), and the plan from the cluster as it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.config import KafkaSettings
from broker.kafka import ClusterAccess, Grant
from broker.policy import Policy, load_bundle
from broker.provision import Desired, desired_access, plan_changes, publishers, recipients
from broker.topics import ACCESS, AUDIT, CONSENT, QUARANTINE, STATE, deliver, ingress

POLICIES = Path(__file__).resolve().parents[3] / "policies"


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_bundle(POLICIES)


@pytest.fixture(scope="module")
def desired(policy: Policy) -> Desired:
    return desired_access(policy, KafkaSettings())


def _of(desired: Desired, principal: str) -> set[tuple[str, str, str, bool]]:
    return {(g.kind, g.name, g.operation, g.prefixed) for g in desired.grants
            if g.principal == principal}  # fmt: skip


def test_an_agency_may_write_its_own_ingress_and_nothing_else(desired: Desired) -> None:
    assert _of(desired, "wmp") == {("topic", ingress("wmp"), "write", False)}


def test_a_recipient_reads_its_own_deliveries_with_its_own_groups_and_acknowledges(
    desired: Desired,
) -> None:
    assert _of(desired, "sfh-penn") == {
        ("topic", deliver("sfh-penn"), "read", False),
        ("group", "sfh-penn.", "read", True),
        ("topic", ACCESS, "write", False),
        *_desk("sfh-penn"),
    }


def _desk(party: str) -> set[tuple[str, str, str, bool]]:
    """A recipient's desk web app's transactional ids, under the party's own desk prefix."""
    return {("transactional_id", f"accord.desk.{party}.", "write", True)}


def _flag_service(party: str) -> set[tuple[str, str, str, bool]]:
    """A co-ordinating team's flag service: its desk topics read and written (never created)
    and their settings read (never altered), its consumer groups, and its delivery topic's
    settings."""
    prefix = f"accord.desk.{party}."
    return {
        ("topic", prefix, "read", True),
        ("topic", prefix, "write", True),
        ("topic", prefix, "describe_configs", True),
        ("group", prefix, "read", True),
        ("topic", deliver(party), "describe_configs", False),
    }


def test_only_a_coordinating_team_holds_what_a_flag_service_needs(
    policy: Policy, desired: Desired
) -> None:
    """Hubs and schools run no flag service: least privilege leaves it out of their grants."""
    parties = policy.bundle.parties
    for p in recipients(policy):
        if parties[p].status != "active":
            continue
        held = _of(desired, p)
        assert _desk(p) <= held
        if parties[p].kind == "coordinating_team":
            assert _flag_service(p) <= held, p
        else:
            assert not _flag_service(p) & held, p
    assert {"sandwell-coord", "wolverhampton-mash"} <= {
        p for p in recipients(policy) if _flag_service(p) <= _of(desired, p)
    }


def test_the_coordinating_teams_flag_service_topics_are_created_by_provisioning(
    desired: Desired,
) -> None:
    specs = {t.name: t for t in desired.topics}
    app = "accord.desk.sandwell-coord.flags"
    assert specs[app].config["cleanup.policy"] == "delete"  # plain retention, not compacted
    assert specs[f"{app}-windows-changelog"].config == {"cleanup.policy": "compact"}
    assert specs[f"{app}-bychild"].partitions == specs[f"{app}-windows-changelog"].partitions
    assert specs[f"{app}-households-changelog"].config == {"cleanup.policy": "compact"}
    assert specs[f"{app}-byhousehold"].partitions == specs[f"{app}-windows-changelog"].partitions
    assert "accord.desk.sfh-penn.flags" not in specs  # a hub raises no flags


def test_a_hub_that_reports_referral_outcomes_also_writes_its_own_ingress(
    desired: Desired,
) -> None:
    assert _of(desired, "cog-tipton") == {
        ("topic", ingress("cog-tipton"), "write", False),
        ("topic", deliver("cog-tipton"), "read", False),
        ("group", "cog-tipton.", "read", True),
        ("topic", ACCESS, "write", False),
        *_desk("cog-tipton"),
    }


def test_exactly_the_active_consent_authorities_may_record_consent(
    policy: Policy, desired: Desired
) -> None:
    writers = {g.principal for g in desired.grants if (g.name, g.operation) == (CONSENT, "write")}
    authorities = policy.bundle.consent_authorities
    assert authorities is not None  # policies/consent-authorities.yaml
    assert writers == {p for p in authorities if policy.bundle.parties[p].status == "active"}
    assert {"sandwell-coord", "school-146201"} <= writers
    assert "smethwick-fsp" not in writers  # listed, but suspended
    assert not writers & {"wmp", "cog-tipton"}  # not listed


def test_without_consent_authorities_only_active_coordinating_teams_record_consent(
    policy: Policy,
) -> None:
    bundle = policy.bundle.model_copy(update={"consent_authorities": None})
    assert bundle.consent_recorders() == ["sandwell-coord", "wolverhampton-mash"]


def test_a_suspended_party_keeps_its_login_but_holds_no_grant(
    policy: Policy, desired: Desired
) -> None:
    suspended = [p for p, party in policy.bundle.parties.items() if party.status == "suspended"]
    assert suspended
    for p in suspended:
        assert p in desired.users
        assert _of(desired, p) == set()


def test_the_services_have_exactly_what_they_use(desired: Desired) -> None:
    assert _of(desired, "worker") == {
        ("topic", "accord.ingress.", "read", True), ("topic", CONSENT, "read", False),
        ("topic", ACCESS, "read", False), ("topic", "accord.deliver.", "write", True),
        ("topic", AUDIT, "write", False), ("topic", QUARANTINE, "write", False),
        ("topic", STATE, "write", False), ("topic", STATE, "read", False),
        ("group", "accord-worker", "read", False),
        ("transactional_id", "accord-worker.", "write", True),  # one id per input partition
    }  # fmt: skip
    # The indexer also reads the quarantine copies for `accord audit quarantine`'s list.
    assert _of(desired, "indexer") == {
        ("topic", AUDIT, "read", False), ("topic", QUARANTINE, "read", False),
    }  # fmt: skip
    assert _of(desired, "console") == {
        ("topic", AUDIT, "read", False), ("topic", AUDIT, "write", False),
        ("transactional_id", "accord-audit-console:", "write", True),
    }  # fmt: skip


def test_nobody_is_granted_anything_but_read_write_and_reading_topic_settings(
    desired: Desired,
) -> None:
    """Create, delete, alter and ACL changes stay the admin's (the super user's) alone; a
    co-ordinating team may read its own topics' settings (the flag service reads their
    retention)."""
    assert {g.operation for g in desired.grants} == {"read", "write", "describe_configs"}
    described = {(g.principal, g.name) for g in desired.grants if g.kind == "topic"
                 and g.operation == "describe_configs"}  # fmt: skip
    assert described == {(p, n) for p, n in described if n.startswith(
        (f"accord.desk.{p}.", f"accord.deliver.{p}"))}  # fmt: skip
    assert "admin" not in {g.principal for g in desired.grants}


def test_every_party_publishing_or_receiving_has_its_topic(
    policy: Policy, desired: Desired
) -> None:
    names = {t.name for t in desired.topics}
    assert {ingress(p) for p in publishers(policy)} <= names
    assert {deliver(p) for p in recipients(policy)} <= names
    assert {AUDIT, CONSENT, ACCESS, QUARANTINE, STATE} <= names


def test_from_an_empty_cluster_everything_is_added(desired: Desired) -> None:
    plan = plan_changes(desired, ClusterAccess(frozenset(), frozenset(), frozenset()),
                        rotate=frozenset())  # fmt: skip
    assert set(plan.add_users) == desired.users
    assert set(plan.add_grants) == desired.grants
    assert len(plan.create_topics) == len(desired.topics)
    assert (plan.remove_users, plan.remove_grants) == ((), ())


def test_a_cluster_already_provisioned_needs_nothing_and_rotation_is_on_request(
    desired: Desired,
) -> None:
    current = ClusterAccess(
        frozenset(t.name for t in desired.topics), desired.users | {"admin"}, desired.grants
    )
    assert not plan_changes(desired, current, rotate=frozenset())
    rotated = plan_changes(desired, current, rotate=frozenset({"wmp"}))
    assert rotated.add_users == ("wmp",)
    assert rotated.rows() == [("add", "login", "wmp", "", "SCRAM-SHA-512")]


def test_a_party_gone_from_the_bundle_loses_its_login_and_grants_and_strays_go(
    desired: Desired,
) -> None:
    """As if ``cog-oldhill`` had been a hub of the bundle at the last provision."""
    gone = {Grant("cog-oldhill", "topic", deliver("cog-oldhill"), "read"),
            Grant("cog-oldhill", "group", "cog-oldhill.", "read", prefixed=True)}  # fmt: skip
    stray = Grant("wmp", "topic", AUDIT, "describe")  # made by hand, not by Accord
    current = ClusterAccess(
        frozenset(t.name for t in desired.topics),
        desired.users | {"admin", "cog-oldhill"},
        desired.grants | gone | {stray},
    )
    plan = plan_changes(desired, current, rotate=frozenset())
    assert plan.remove_users == ("cog-oldhill",)
    assert set(plan.remove_grants) == gone | {stray}
    assert (plan.add_users, plan.add_grants, plan.create_topics) == ((), (), ())
