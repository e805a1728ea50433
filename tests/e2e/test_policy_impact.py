"""``accord policy impact`` on real Kafka: the retained ingress re-decided under the bundle in
force and a changed one, reporting exactly what a test computes with the policy engine alone,
delivering nothing, audited, naming no child."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from broker.devkafka import EmbeddedKafka
from broker.events import parse_event
from broker.policy import Policy, load_bundle
from broker.sdk import Publisher
from broker.synthetic import SyntheticFamilies
from broker.topics import deliver
from tests.e2e.worker_proc import POLICIES, prepared, read_all, read_audit
from tests.kafka_helpers import clients, kafka_env, provisioned

pytestmark = pytest.mark.slow


def _changed_bundle(root: Path) -> Path:
    """The example bundle with police-to-coord narrowed: need level 3 and up, no location."""
    new = root / "new-policies"
    shutil.copytree(POLICIES, new, ignore=shutil.ignore_patterns("scenarios"))
    path = new / "agreements" / "sandwell-early-help.yaml"
    text = path.read_text()
    old_when = "      event.need_level >= 2\n      && event.subjects"
    assert text.count(old_when) == 1
    text = text.replace(old_when, "      event.need_level >= 3\n      && event.subjects")
    old_share = "event.categories, event.child_present, event.location]"
    assert text.count(old_share) == 1
    path.write_text(text.replace(old_share, "event.categories, event.child_present]"))
    return new


def _events(n: int) -> list[dict[str, Any]]:
    """Police incidents in Sandwell (DY4, WS10) and Wolverhampton (WV), need levels 1-4."""
    fam = SyntheticFamilies(seed=1234)
    out = []
    for i in range(n):
        family = fam.faker.last_name()
        postcode = fam.postcode(("DY4", "WS10", "WV10"))
        child = fam.subject("child", family_name=family, postcode=postcode, school_urn="146201")
        parent = fam.subject("parent", family_name=family, postcode=postcode)
        out.append(fam.event("police.domestic_incident", "wmp", subjects=[child, parent],
                             need_level=1 + i % 4))  # fmt: skip
    return out


def _expected(current: Policy, new: Policy, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The differences, from the policy engine alone: no Kafka, no envelope, no processor."""
    now = datetime.now(UTC)
    moves: Counter[tuple[str, str, str, str, str | None]] = Counter()
    gained: dict[str, Counter[str]] = {}
    lost: dict[str, Counter[str]] = {}
    for raw in events:
        event = parse_event(raw, now=now)
        before = {d.recipient: d for d in current.decide(event, [], at=now)}
        after = {d.recipient: d for d in new.decide(event, [], at=now)}
        for recipient in before.keys() | after.keys():
            b, a = before.get(recipient), after.get(recipient)
            b_shares, a_shares = bool(b and b.shares), bool(a and a.shares)
            if b_shares and not a_shares:
                assert b is not None
                why = a.reason if a and a.reason else "not-a-candidate"
                moves["stops", b.agreement_id or "", recipient, why, a and a.agreement_id] += 1
            elif a_shares and not b_shares:
                assert a is not None
                why = b.reason if b and b.reason else "not-a-candidate"
                moves["starts", a.agreement_id or "", recipient, why, b and b.agreement_id] += 1
            elif b_shares and a_shares:
                assert a is not None
                assert b is not None
                for f in set(a.fields_shared) - set(b.fields_shared):
                    gained.setdefault(recipient, Counter())[f] += 1
                for f in set(b.fields_shared) - set(a.fields_shared):
                    lost.setdefault(recipient, Counter())[f] += 1
    return {
        "changes": sorted(
            [{"change": c, "agreement": ag, "recipient": r, "reason": why,
              "reason_agreement": other, "events": k}
             for (c, ag, r, why, other), k in moves.items()],
            key=lambda row: (row["change"], row["agreement"], row["recipient"], row["reason"],
                             row["reason_agreement"] or ""),
        ),
        "fields_gained": {r: dict(c) for r, c in gained.items()},
        "fields_lost": {r: dict(c) for r, c in lost.items()},
    }  # fmt: skip


def _impact(env: dict[str, str], *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "broker", "policy", "impact", "--format", "json", *args],
        env=env, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _comparable(result: dict[str, Any]) -> dict[str, Any]:
    return {k: result[k] for k in ("changes", "fields_gained", "fields_lost")}


async def test_impact_reports_exactly_what_the_engine_says_and_delivers_nothing(
    isolated_kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    bootstrap = isolated_kafka.bootstrap
    policy, keys = await prepared(bootstrap, tmp_path)
    events = _events(40)
    env = {**os.environ, "ACCORD_HOME": str(tmp_path), **kafka_env(bootstrap),
           "ACCORD_KEYSTORE__PATH": str(keys.path)}  # fmt: skip
    async with Publisher("wmp", keys, clients(bootstrap, "wmp")) as publisher:
        await publisher.publish_many(events)
    new_dir = _changed_bundle(tmp_path)
    new = load_bundle(new_dir)

    result = _impact(env, "--policies", str(new_dir), "--current", str(POLICIES))
    expected = _expected(policy, new, events)
    assert expected["changes"], "the change must stop some shares"
    assert expected["fields_lost"], "the change must remove a field"
    assert _comparable(result) == expected
    assert result["events"] == len(events)
    assert result["consent_records_changed"] == []  # no consent record on file
    assert (result["current_version"], result["new_version"]) == (policy.version, new.version)

    # The other way round: what stopped now starts, what was lost is gained.
    back = _impact(env, "--policies", str(POLICIES), "--current", str(new_dir), "--since", "1d")
    assert _comparable(back) == _expected(new, policy, events)
    assert back["fields_gained"] == expected["fields_lost"]

    # Split between processes, the same answer.
    split = _impact(env, "--policies", str(new_dir), "--current", str(POLICIES),
                    "--processes", "2")  # fmt: skip
    assert _comparable(split) == expected

    # Nothing retained since: nothing compared, said so, never "no decision would change",
    # and not a clean exit; audited all the same (every consent record was opened).
    none = subprocess.run(
        [sys.executable, "-m", "broker", "policy", "impact", "--policies", str(new_dir),
         "--current", str(POLICIES), "--since", "0m"],
        env=env, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert none.returncode == 1, none.stderr[-3000:]
    assert none.stdout.startswith("no retained events since "), none.stdout
    assert ": nothing was compared (bundle " in none.stdout
    assert "no decision would change" not in none.stdout
    chains = [line.rsplit(" ", 1)[1] for line in none.stdout.splitlines()
              if line.startswith("audited as policy_impact on chain ")]  # fmt: skip
    assert len(chains) == 1
    assert result["nothing_compared"] is False
    assert result["events_read"] == len(events)

    # Audited: one policy_impact record per run, each on its own signed chain, naming who
    # ran it as the command line's other records do; nothing delivered; no child named.
    audit = await read_audit(bootstrap)
    runs = [r for r in audit if r.kind == "policy_impact"]
    assert {r.chain for r in runs} == {result["audit_chain"], back["audit_chain"],
                                       split["audit_chain"], chains[0]}  # fmt: skip
    for run in runs:
        assert any(r.kind == "checkpoint" and r.chain == run.chain for r in audit)
        assert run.subject_keys == ()
        assert run.data["officer"] == f"{getpass.getuser()} (terminal, not signed in)"
    [empty] = [r for r in runs if r.chain == chains[0]]
    assert empty.data["nothing_compared"] is True
    assert await read_all(bootstrap, deliver("sandwell-coord")) == []
    text = json.dumps([result, back, split])
    for event in events:
        for subject in event["subjects"]:
            assert subject["family_name"] not in text
            assert subject["nhs_number"] not in text


HOUSING = "wm-housing-assoc"


def _with_new_sender(root: Path) -> Path:
    """The example bundle with a new sender: a housing association whose eviction-risk
    contacts go to the MASH in safeguarding cases."""
    new = root / "with-housing"
    shutil.copytree(POLICIES, new, ignore=shutil.ignore_patterns("scenarios"))
    wmp = "  wmp:\n    name: West Midlands Police\n    kind: agency\n"
    clause = "  - id: partners-to-mash-safeguarding\n    from: ["
    for name, old, to in (
        ("parties.yaml", wmp,
         f"{wmp}  {HOUSING}:\n    name: WM Housing Association\n    kind: agency\n"),
        ("agreements/wolverhampton-mash.yaml", clause, f"{clause}{HOUSING}, "),
        ("agreements/wolverhampton-mash.yaml", "version: 4\n", "version: 5\n"),
    ):  # fmt: skip
        path = new / name
        text = path.read_text()
        assert text.count(old) == 1, (name, old)
        path.write_text(text.replace(old, to))
    return new


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker", "policy", "impact", *args],
        env=env, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip


async def test_a_new_senders_topic_is_read_and_said_when_not_provisioned_yet(
    isolated_kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    """Only the bundle in force's senders' topics were read: a new sender's retained events
    compared as "no retained events", and with the new bundle as --current its topic, not
    yet provisioned, failed with no hint."""
    bootstrap = isolated_kafka.bootstrap
    _, keys = await prepared(bootstrap, tmp_path)
    keys.ensure_party(HOUSING)
    env = {**os.environ, "ACCORD_HOME": str(tmp_path), **kafka_env(bootstrap),
           "ACCORD_KEYSTORE__PATH": str(keys.path)}  # fmt: skip
    new_dir = _with_new_sender(tmp_path)
    since = datetime.now(UTC).isoformat()  # after any other test's records on this broker
    there = ("--policies", str(new_dir), "--current", str(POLICIES), "--since", since)

    # Not provisioned yet (it is approved first): said in one line, not failed on.
    done = _cli(env, *there)
    assert done.returncode == 1, done.stderr[-3000:]  # nothing retained since: no compare
    assert (
        f"{HOUSING}: new sender, no topic the worker can read yet (run 'accord kafka "
        "provision' after approval); nothing of it compared"
    ) in done.stdout.splitlines()
    # A sender of the bundle in force without its topic: refused, saying what to do.
    back = _cli(env, "--policies", str(POLICIES), "--current", str(new_dir), "--since", since)
    assert back.returncode == 2, back.stderr[-3000:]
    assert back.stdout == ""
    assert back.stderr.splitlines()[-1] == (
        f"accord: error: the topic accord.ingress.{HOUSING} of {HOUSING}, a sender in the "
        "bundle in force, does not exist or is not readable by the worker: run 'accord kafka "
        f"provision --policies {new_dir}' as the admin"
    )

    # Provisioned, and publishing: its events are read, and start sharing under the new
    # bundle; under the one in force today's worker refuses them (unknown-sender).
    provisioned(bootstrap, load_bundle(new_dir))
    fam = SyntheticFamilies(seed=77)
    family, postcode = fam.faker.last_name(), fam.postcode(("WV10",))
    event = fam.event("housing.eviction_risk", HOUSING, need_level=4, subjects=[
        fam.subject("child", family_name=family, postcode=postcode),
        fam.subject("parent", family_name=family, postcode=postcode),
    ])  # fmt: skip
    async with Publisher(HOUSING, keys, clients(bootstrap, HOUSING)) as publisher:
        await publisher.publish_many([event])
    result = _impact(env, *there)
    assert (result["events_read"], result["events"]) == (1, 1)
    assert result["new_senders_not_read"] == []
    assert result["changes"] == [
        {"change": "starts", "agreement": "wolverhampton-mash", "recipient": "wolverhampton-mash",
         "reason": "unknown-sender", "reason_agreement": None, "events": 1},
    ]  # fmt: skip
