"""``accord deploy render --desk PARTY``: which recipients' desks a deployment runs, and
which parties it refuses, before anything is rendered."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.deploy import DESK_OPS_PORT, DESK_PORT, FLAGS_OPS_PORT, deployment
from broker.errors import UsageError
from broker.policy import load_bundle

REPO = Path(__file__).resolve().parents[3]
BUNDLE = REPO / "policies"


def _dep(*desks: str) -> object:
    return deployment(load_bundle(BUNDLE), BUNDLE, brokers=1, partitions=1, image="a:1",
                      desks=desks)  # fmt: skip


def test_no_desk_is_run_unless_named() -> None:
    dep = deployment(load_bundle(BUNDLE), BUNDLE, brokers=1, partitions=1, image="a:1")
    assert dep.desks == ()
    assert dep.desk_processes == ()
    assert [p.name for p in dep.processes] == ["worker", "indexer", "console"]


def test_a_coordinating_team_runs_a_desk_and_a_flag_service_as_itself() -> None:
    dep = deployment(load_bundle(BUNDLE), BUNDLE, brokers=1, partitions=1, image="a:1",
                     desks=["sandwell-coord", "cog-tipton", "sandwell-coord"])  # fmt: skip
    assert dep.desks == ("cog-tipton", "sandwell-coord")
    by_name = {p.name: p for p in dep.desk_processes}
    assert set(by_name) == {"desk-cog-tipton", "desk-sandwell-coord", "flags-sandwell-coord"}
    desk = by_name["desk-sandwell-coord"]
    assert desk.args == ("desk", "--as", "sandwell-coord")
    assert (desk.principal, desk.party) == ("sandwell-coord", "sandwell-coord")
    assert (desk.web_port, desk.ops_port, desk.settings_section) == (
        DESK_PORT,
        DESK_OPS_PORT,
        "DESK",
    )
    flags = by_name["flags-sandwell-coord"]
    assert flags.args == ("desk", "flags", "--as", "sandwell-coord")
    assert (flags.web_port, flags.ops_port, flags.settings_section) == (
        None,
        FLAGS_OPS_PORT,
        "DESK",
    )
    # A hub raises no flags: no flag service.
    assert "flags-cog-tipton" not in by_name
    # The partnership's own processes keep their sections.
    assert {p.settings_section for p in dep.processes if p.party is None} == {
        "WORKER",
        "INDEXER",
        "CONSOLE",
    }


@pytest.mark.parametrize(
    ("party", "says"),
    [
        ("no-such-party", "--desk no-such-party: no such party in the policy bundle"),
        ("wmp", "--desk wmp: a desk is for recipients, and wmp is an agency"),
        ("smethwick-fsp", "--desk smethwick-fsp: a desk is for recipients"),
    ],
)
def test_an_unknown_party_or_an_agency_gets_no_desk(party: str, says: str) -> None:
    with pytest.raises(UsageError, match=f"^{says}"):
        _dep(party)


def test_a_suspended_recipient_gets_no_desk(tmp_path: Path) -> None:
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(BUNDLE, bundle)
    parties = bundle / "parties.yaml"
    text = parties.read_text()
    head = "  cog-tipton:\n    name: Tipton Community Operating Group\n    kind: hub\n"
    assert head in text
    parties.write_text(text.replace(head, head + "    status: suspended\n"))
    with pytest.raises(UsageError, match=r"^--desk cog-tipton: the party is suspended$"):
        deployment(load_bundle(bundle), bundle, brokers=1, partitions=1, image="a:1",
                   desks=["cog-tipton"])  # fmt: skip


def test_a_deployment_ships_exactly_the_files_the_loader_reads(tmp_path: Path) -> None:
    """A bundle file spelt .yml ships (its rules would otherwise be lost in the cluster);
    scenarios and anything hidden, such as a .git folder, do not."""
    import shutil

    bundle = tmp_path / "policies"
    shutil.copytree(BUNDLE, bundle)
    (bundle / "restrictions.yaml").rename(bundle / "restrictions.yml")
    (bundle / ".git").mkdir()
    (bundle / ".git" / "config.yaml").write_text("a: 1\n")
    policy = load_bundle(bundle)
    dep = deployment(policy, bundle, brokers=1, partitions=1, image="a:1")
    shipped = dict(dep.policy_files)
    assert shipped["restrictions.yml"] == (bundle / "restrictions.yml").read_text()
    assert not [name for name in shipped if name.startswith((".git/", "scenarios/"))]
    expected = {"parties.yaml", "restrictions.yml", "consent-authorities.yaml", "flags.yaml"}
    expected |= {f"agreements/{p.name}" for p in (bundle / "agreements").iterdir()}
    assert set(shipped) == expected
    # What ships loads as the same bundle.
    mirror = tmp_path / "shipped"
    for name, text in shipped.items():
        (mirror / name).parent.mkdir(parents=True, exist_ok=True)
        (mirror / name).write_text(text)
    assert load_bundle(mirror).bundle.version() == policy.bundle.version()
