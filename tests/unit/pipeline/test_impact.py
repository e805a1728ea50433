"""The impact report's arithmetic: shares that stop or start, fields gained or lost, and
decisions that do not change, per agreement, recipient and reason; and the decisions it
compares, made once per record where the bundle does not matter, exactly as the worker's
whole chain makes them."""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from broker._canonical import canonical_json
from broker.audit import ChainWriter
from broker.cli._impact import parse_since
from broker.config import KafkaSettings, KemSuite
from broker.envelope import Sealer
from broker.errors import UsageError
from broker.kafka import KafkaClients, Retained, partition_for
from broker.keys import SPECIAL_PRINCIPALS, FileKeyStore
from broker.pipeline import ImpactRow, compare, record_impact, redecide_both
from broker.pipeline._impact import Decided, Impact, Key, Tally, redecide
from broker.pipeline._impact_redecide import _shards
from broker.pipeline._metrics import Metrics
from broker.pipeline._processor import Processor, build_processor
from broker.pipeline._state import ConsentTable, WorkerState
from broker.policy import Policy, SubjectScope, load_bundle
from broker.principals import Principal
from broker.provision import WORKER_TRANSACTIONAL_ID
from broker.synthetic import SyntheticFamilies
from broker.topics import (
    ACCESS,
    AUDIT,
    CONSENT,
    SCHEMA_ACCESS,
    SCHEMA_CONSENT,
    SCHEMA_EVENT,
    ingress,
    party_of_ingress,
)
from tests.unit.pipeline.conftest import AT, ENVELOPE, POLICIES


def _shared(agreement: str, *fields: str) -> Decided:
    return Decided(True, "shared", None, agreement, frozenset(fields))


def _not(reason: str) -> Decided:
    return Decided(False, "not_shared", reason, None, frozenset())


def test_stops_starts_and_field_changes_are_counted_apart() -> None:
    before = {
        ("t", "e1", "coord"): _shared("a", "name", "location"),
        ("t", "e2", "coord"): _shared("a", "name"),
        ("t", "e3", "coord"): _not("no-clause"),
        ("t", "e4", "hub"): _shared("b", "name"),
        ("t", "e5", "coord"): _shared("a", "name", "location"),
    }
    after = {
        ("t", "e1", "coord"): _shared("a", "name"),  # loses location
        ("t", "e2", "coord"): _not("condition-false"),  # stops
        ("t", "e3", "coord"): _shared("a2", "name", "dob"),  # starts
        ("t", "e5", "coord"): _shared("a", "name", "location"),  # unchanged
        # e4/hub: no longer a candidate at all
    }
    impact = compare(before, after, versions=("v1", "v2"))
    assert impact.rows == [
        ImpactRow("starts", "a2", "coord", "no-clause", 1),
        ImpactRow("stops", "a", "coord", "condition-false", 1),
        ImpactRow("stops", "b", "hub", "not-a-candidate", 1),
    ]
    assert impact.lost == {"coord": {"location": 1}}
    assert impact.gained == {}
    assert (impact.events, impact.decisions, impact.unchanged) == (5, 5, 1)
    back = compare(after, before, versions=("v2", "v1"))
    assert back.gained == {"coord": {"location": 1}}
    assert {r.change for r in back.rows} == {"starts", "stops"}


def test_a_not_shared_decision_whose_reason_changes_is_unchanged() -> None:
    key = ("t", "e", "r")
    impact = compare(
        {key: _not("no-clause")}, {key: _not("consent-missing")}, versions=("v1", "v2")
    )
    assert (impact.rows, impact.unchanged) == ([], 1)


def test_since_takes_durations_and_dates_and_refuses_anything_else_in_one_line() -> None:
    now = datetime(2026, 12, 3, 12, tzinfo=UTC)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("36h", now) == now - timedelta(hours=36)
    assert parse_since("90m", now) == now - timedelta(minutes=90)
    assert parse_since("2026-11-01", now) == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_since(None, now) is None
    with pytest.raises(UsageError, match="--since"):
        parse_since("last week", now)


def test_since_in_the_future_is_refused_it_would_compare_nothing_and_look_clean() -> None:
    now = datetime(2026, 12, 3, 12, tzinfo=UTC)
    with pytest.raises(UsageError, match=r"^--since: 2030-01-01 is in the future$"):
        parse_since("2030-01-01", now)
    with pytest.raises(UsageError, match="in the future"):
        parse_since("2026-12-03T12:00:01+00:00", now)
    assert parse_since("2026-12-03T12:00:00+00:00", now) == now


def test_a_run_that_decided_nothing_says_nothing_was_compared_never_that_nothing_changes() -> None:
    since = datetime(2026, 12, 1, tzinfo=UTC)
    empty = compare({}, {}, versions=("v1", "v2"))
    empty.since = since
    assert empty.nothing_compared
    assert empty.nothing_said() == (
        "no retained events since 2026-12-01T00:00:00+00:00: nothing was compared"
    )
    out = empty.as_json()
    assert (out["nothing_compared"], out["since"], out["events_read"]) == (
        True, "2026-12-01T00:00:00+00:00", 0,
    )  # fmt: skip
    # Events read, none decided under either bundle (quarantined, or from no known sender).
    empty.read, empty.since = 3, None
    assert empty.nothing_said() == (
        "3 retained event record(s), none decided under either bundle: nothing was compared"
    )
    # One decision compared, unchanged: a real "no change".
    key = ("t", "e1", "coord")
    same = compare({key: _shared("a", "name")}, {key: _shared("a", "name")}, versions=("v1", "v2"))
    assert not same.nothing_compared
    assert same.as_json()["nothing_compared"] is False


# -- the decisions: once per record where the bundle does not matter, as the worker's chain ----

NO_KEY = "school-146201"  # a recipient with no encryption key: Operation Encompass's school


@pytest.fixture(scope="module")
def impact_keys(tmp_path_factory: pytest.TempPathFactory, project_policy: Policy) -> FileKeyStore:
    store = FileKeyStore(tmp_path_factory.mktemp("impact-keys"), create=True)
    for party in project_policy.bundle.parties:
        if party != NO_KEY:
            store.ensure_party(party, kem=KemSuite.X25519)
    for principal, purposes in SPECIAL_PRINCIPALS.items():
        store.ensure_party(principal, purposes=purposes, kem=KemSuite.X25519)
    store.set_linkage_key()
    return store


@pytest.fixture(scope="module")
def changed_policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    """Police-to-coord narrowed (need level 3 and up, no location); the co-ordinating team
    no longer speaks for hubs' consent; Oldbury's hub no longer a party."""
    root = tmp_path_factory.mktemp("changed") / "policies"
    shutil.copytree(POLICIES, root, ignore=shutil.ignore_patterns("scenarios"))
    edits = {
        "agreements/sandwell-early-help.yaml": [
            ("event.need_level >= 2\n      && event.subjects",
             "event.need_level >= 3\n      && event.subjects"),
            ("event.child_present, event.location]", "event.child_present]"),
        ],
        "consent-authorities.yaml": [
            ('sandwell-coord: {purposes: ["*"], recipients: ["*"]}',
             'sandwell-coord: {purposes: ["*"], recipients: ["kind:coordinating_team"]}'),
        ],
        # Oldbury's COG leaves the bundle, and with it the clause that lets it report back.
        "agreements/sandwell-referrals.yaml": [("cog-oldbury, ", "")],
        "parties.yaml": [
            ('  cog-oldbury:\n    name: Oldbury Community Operating Group\n    kind: hub\n'
             '    localities: ["B68", "B69"]\n', ""),
        ],
    }  # fmt: skip
    for name, changes in edits.items():
        path = root / name
        text = path.read_text()
        for old, new in changes:
            assert text.count(old) == 1, (name, old)
            text = text.replace(old, new)
        path.write_text(text)
    return load_bundle(root)


def _full_chain(policy: Policy, records: list[Retained], keys: FileKeyStore) -> dict[Key, Decided]:
    """How impact decided before: the worker's processor, every stage (redaction, sealing,
    audit) run per bundle, the decisions read back from the ``decided`` audit records. One
    processor per topic, as the worker keeps replay ids per input partition (one sender's),
    all filing consent in one table."""
    now = [AT]
    consents = ConsentTable()
    processors: dict[str, Processor] = {}
    out: dict[Key, Decided] = {}
    for rec in records:
        now[0] = datetime.fromtimestamp(rec.timestamp_ms / 1000, UTC)
        if rec.topic not in processors:
            processors[rec.topic] = build_processor(
                policy=policy, keys=keys, linkage_key=keys.linkage_key(),
                state=WorkerState(consents=consents),
                chain=ChainWriter(Principal.WORKER.chain(f"impact-{len(processors)}"),
                                  clock=lambda: now[0]),
                clock=lambda: now[0], envelope=ENVELOPE, metrics=Metrics(CollectorRegistry()),
                checkpoint_every=2**62,
            )  # fmt: skip
        produced = processors[rec.topic].handle(rec.topic, rec.partition, rec.offset,
                                                rec.value, rec.headers, at=now[0])  # fmt: skip
        for o in produced:
            if o.topic == AUDIT and b'"kind":"decided"' in o.value:
                audit = json.loads(o.value)
                data = audit["data"]
                scopes = [SubjectScope.model_validate(x) for x in data["subject_scopes"]]
                out[(rec.topic, audit["event_id"], audit["party"])] = Decided(
                    data["outcome"] != "not_shared", data["outcome"], data.get("reason"),
                    data.get("agreement_id"), frozenset(data.get("fields_shared", ())),
                    tuple(sorted(data["subject_roles"].items())),
                    tuple(sorted(data["transforms"].items())),
                    tuple(sorted(x.model_dump_json() for x in scopes)),
                )  # fmt: skip
    return out


#: Every input topic's partitions, as ``accord policy impact`` reads them from Kafka.
PARTITIONS = 3


def placed(records: list[Retained]) -> dict[str, int]:
    """The partition counts of the topics ``records`` are on."""
    return {r.topic: PARTITIONS for r in records}


class _Records:
    """Retained records, one second apart, as the impact command reads them: a sealed one
    keyed by its event id, on the partition that key hashes to, as a producer puts it."""

    def __init__(self, keys: FileKeyStore) -> None:
        self.keys = keys
        self.out: list[Retained] = []

    def raw(self, topic: str, value: bytes | None, headers: Any = (), *,
            key: bytes | None = None, partition: int | None = None) -> Retained:  # fmt: skip
        n = len(self.out)
        at = AT + timedelta(seconds=n)
        if partition is None:
            partition = partition_for(key, list(range(PARTITIONS))) if key else 0
        rec = Retained(topic, partition, n, value, tuple(headers), int(at.timestamp() * 1000),
                       key)  # fmt: skip
        self.out.append(rec)
        return rec

    def sealed(self, party: str, payload: dict[str, Any], *, topic: str | None = None,
               schema: str = SCHEMA_EVENT, event_id: str | None = None) -> Retained:  # fmt: skip
        topic = topic or ingress(party)
        sealed = Sealer(party, self.keys, ENVELOPE).seal(
            canonical_json(payload), event_id=event_id or payload["event_id"],
            recipient=Principal.WORKER, schema=schema, topic=topic,
        )  # fmt: skip
        key = (event_id or payload["event_id"]).encode()
        return self.raw(topic, sealed.value, sealed.headers, key=key)

    def again(self, rec: Retained, *, key: bytes | None = b"same",
              partition: int | None = None) -> Retained:  # fmt: skip
        """``rec`` re-sent: with its own key (and so partition), unless given others."""
        return self.raw(rec.topic, rec.value, rec.headers,
                        key=rec.key if key == b"same" else key, partition=partition)  # fmt: skip

    def consent(self, nhs_number: str, state: str, recorded_at: str) -> None:
        record = {"subject": {"nhs_number": nhs_number}, "state": state,
                  "purposes": ["early_help"] if state == "given" else ["*"],
                  "recipients": ["kind:hub"], "recorded_by": "sandwell-coord",
                  "recorded_at": recorded_at}  # fmt: skip
        self.sealed("sandwell-coord", record, topic=CONSENT, schema=SCHEMA_CONSENT,
                    event_id=str(uuid.uuid4()))  # fmt: skip


def _mix(keys: FileKeyStore) -> tuple[list[Retained], dict[str, str]]:
    """Shares, consent given and withdrawn, a recipient without a key, replays, and records
    quarantined at every step; and the event ids the assertions look for."""
    fam = SyntheticFamilies(seed=14, today=date(2026, 11, 21))

    def incident(district: str, need_level: int, **extra: Any) -> dict[str, Any]:
        family = fam.faker.last_name()
        postcode = fam.postcode((district,))
        child = fam.subject("child", family_name=family, postcode=postcode, school_urn="146201")
        parent = fam.subject("parent", family_name=family, postcode=postcode)
        return fam.event(subjects=[child, parent], need_level=need_level, **extra)

    r = _Records(keys)
    tipton, oldbury = incident("DY4", 3), incident("B68", 2)
    r.consent(tipton["subjects"][0]["nhs_number"], "given", "2026-10-01T09:00:00Z")
    r.consent(oldbury["subjects"][0]["nhs_number"], "given", "2026-10-01T09:00:00Z")
    first = r.sealed("wmp", tipton)
    r.sealed("wmp", oldbury)
    for i in range(8):
        r.sealed("wmp", incident(("DY4", "WS10", "B70", "WV10")[i % 4], 1 + i % 4))
    r.again(first)  # a replay
    r.raw(ingress("wmp"), b"")  # malformed: empty
    r.raw(ingress("wmp"), first.value, [("accord-dek", None)])  # malformed: null header
    invalid = str(uuid.uuid4())
    r.sealed("wmp", {"event_id": invalid, "sender": "wmp"})  # invalid-event, yet opened
    r.sealed("wmp", incident("DY4", 3), topic=ingress("swbh"))  # wrong-topic
    r.raw(ingress("nobody"), b"not an envelope")  # unknown-sender under both
    # An invalid event spends no id: its corrected re-send under the same id is decided.
    corrected = incident("WV10", 3)
    r.sealed("wmp", {**corrected, "need_level": 9})  # invalid-event
    r.sealed("wmp", corrected)
    # A sender only the bundle in force knows spends an id; the same id from the police is
    # its own event (the worker keeps replay ids per input partition): decided under both.
    shadowed = incident("WS10", 3)
    r.sealed("cog-oldbury", {**incident("B68", 2), "event_id": shadowed["event_id"],
                             "sender": "cog-oldbury"})  # fmt: skip
    r.sealed("wmp", shadowed)
    r.consent(tipton["subjects"][0]["nhs_number"], "withdrawn", "2026-11-21T12:00:00Z")
    withdrawn = dict(incident("DY4", 3), subjects=tipton["subjects"])
    r.sealed("wmp", withdrawn)
    ack = {"event_id": tipton["event_id"], "recipient": "cog-tipton", "by": "duty-worker-3",
           "purpose": "early_help", "at": "2026-11-22T07:59:00Z"}  # fmt: skip
    r.sealed("cog-tipton", ack, topic=ACCESS, schema=SCHEMA_ACCESS, event_id=str(uuid.uuid4()))
    ids = {"tipton": tipton["event_id"], "oldbury": oldbury["event_id"], "invalid": invalid,
           "shadowed": shadowed["event_id"], "withdrawn": withdrawn["event_id"],
           "corrected": corrected["event_id"]}  # fmt: skip
    return r.out, ids


def test_deciding_once_per_record_gives_what_the_whole_chain_per_bundle_gives(
    impact_keys: FileKeyStore, project_policy: Policy, changed_policy: Policy
) -> None:
    records, ids = _mix(impact_keys)
    policies = [project_policy, changed_policy]
    fast = redecide(policies, records, keys=impact_keys, envelope=ENVELOPE)
    full = [_full_chain(p, records, impact_keys) for p in policies]
    # Impact reports the policy's decisions: a recipient with no key yet (a new school) is
    # shared there, where the worker refuses it for want of a key.
    wmp = ingress("wmp")
    assert fast[0][(wmp, ids["tipton"], NO_KEY)].outcome == "shared"
    assert full[0][(wmp, ids["tipton"], NO_KEY)].reason == "recipient-key-unavailable"
    keyed = [[{k: v for k, v in run.items() if k[2] != NO_KEY} for run in r] for r in (fast, full)]
    assert keyed[0] == keyed[1]
    versions = (project_policy.version, changed_policy.version)
    assert compare(*keyed[0], versions=versions) == compare(*keyed[1], versions=versions)

    # The mix does what it is for.
    now, new = fast
    assert now[(wmp, ids["tipton"], "cog-tipton")].outcome == "shared"  # on consent
    assert new[(wmp, ids["tipton"], "cog-tipton")].reason == "consent-missing"  # not counted
    assert now[(wmp, ids["withdrawn"], "cog-tipton")].reason == "consent-withdrawn"
    assert (wmp, ids["oldbury"], "cog-oldbury") in now
    assert (wmp, ids["oldbury"], "cog-oldbury") not in new
    assert not any(event == ids["invalid"] for _, event, _ in now.keys() | new.keys())
    assert (wmp, ids["shadowed"], "sandwell-coord") in new
    assert (wmp, ids["shadowed"], "sandwell-coord") in now  # cog-oldbury's id is its own
    assert (wmp, ids["corrected"], "sandwell-coord") in now
    assert (wmp, ids["corrected"], "sandwell-coord") in new
    impact = compare(now, new, versions=versions)
    assert {r.change for r in impact.rows} == {"stops"}  # (starts: the table test above)
    assert list(impact.lost) == ["sandwell-coord"]
    assert list(impact.lost["sandwell-coord"]) == ["event.location"]


@pytest.mark.parametrize("processes", [1, 2])
def test_progress_counts_each_record_once_however_many_processes(
    impact_keys: FileKeyStore, processes: int
) -> None:
    """Every process decides every consent record; the bar must still end at its total
    (it read 'deciding 899/727' with two), and reach it, not stop short of it."""
    records, _ = _mix(impact_keys)
    assert sum(r.topic == CONSENT for r in records) >= 2
    heard: list[int] = []
    redecide_both(POLICIES, POLICIES, records, keystore=impact_keys.path, passphrase=None,
                  envelope=ENVELOPE, processes=processes, progress=heard.append)  # fmt: skip
    assert sum(heard) == len(records)


def test_a_share_that_stays_a_share_but_widens_is_reported_not_unchanged() -> None:
    """Whose data goes, and in what form, matters as much as which fields: the same field
    names, with the other adult in the view and the birth date no longer banded."""
    fields = frozenset({"subject.name", "subject.dob"})
    before = Decided(True, "shared", None, "police-to-cog", fields, (("child", 1),),
                     (("subject.dob", "age_band"),))  # fmt: skip
    after = Decided(True, "shared_override", None, "police-to-cog", fields,
                    (("child", 1), ("other_adult", 1)), ())  # fmt: skip
    impact = compare({("t", "e1", "cog-tipton"): before}, {("t", "e1", "cog-tipton"): after},
                     versions=("v1", "v2"))  # fmt: skip
    assert impact.unchanged == 0
    assert impact.views == {"cog-tipton": {
        "outcome shared -> shared_override": 1,
        "people shared: other_adult 0 -> 1": 1,
        "subject.dob: age_band -> as is": 1,
    }}  # fmt: skip
    assert (impact.gained, impact.lost, impact.rows) == ({}, {}, [])
    assert impact.as_json()["views_changed"] == impact.views


def test_a_transformed_field_one_side_does_not_share_reads_not_shared_not_as_is() -> None:
    """A draft that starts sending the NHS number as a pseudonym adds a field: "as is ->
    pseudonym" (and, run the other way, "pseudonym -> as is") read as unmasking it."""
    fields = frozenset({"subject.name"})
    before = Decided(True, "shared", None, "police-to-cog", fields)
    after = Decided(True, "shared", None, "police-to-cog", fields | {"subject.nhs_number"},
                    transforms=(("subject.nhs_number", "pseudonym"),))  # fmt: skip
    key = ("t", "e1", "cog-tipton")
    there = compare({key: before}, {key: after}, versions=("v1", "v2"))
    back = compare({key: after}, {key: before}, versions=("v2", "v1"))
    assert there.views == {"cog-tipton": {"subject.nhs_number: not shared -> pseudonym": 1}}
    assert back.views == {"cog-tipton": {"subject.nhs_number: pseudonym -> not shared": 1}}
    assert there.as_json()["views_changed"] == there.views
    assert (there.gained, back.lost) == ({"cog-tipton": {"subject.nhs_number": 1}},) * 2


def test_every_copy_of_an_event_goes_to_the_same_process_in_time_order() -> None:
    """A re-sent copy is a replay to the worker: split by position, it could be decided as
    new in another process, at its own later time."""

    def rec(key: bytes, at: int, topic: str = ingress("wmp")) -> Retained:
        return Retained(topic, 0, at, b"v", (), at, key)

    records = [rec(b"e%d" % (i % 7), i) for i in range(40)] + [rec(b"c", 5, CONSENT)]
    shards = _shards(records, 3)
    homes: dict[bytes | None, set[int]] = {}
    for r in records:
        if r.topic != CONSENT:
            homes.setdefault(r.key, set()).update(n for n, s in enumerate(shards) if r in s)
    assert len(homes) == 7
    assert all(len(h) == 1 for h in homes.values())
    assert all(any(r.topic == CONSENT for r in shard) for shard in shards)
    assert all([r.timestamp_ms for r in s] == sorted(r.timestamp_ms for r in s) for s in shards)


class _TxnProducer:
    """A transactional producer's seam: what was sent, and inside which transaction."""

    def __init__(self) -> None:
        self.committed: list[list[bytes]] = []
        self.outside: list[bytes] = []
        self._open: list[bytes] | None = None

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def transaction(self) -> Any:
        producer = self

        class _Txn:
            async def __aenter__(self) -> None:
                producer._open = []

            async def __aexit__(self, *exc: object) -> None:
                assert producer._open is not None
                producer.committed.append(producer._open)
                producer._open = None

        return _Txn()

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> None:  # noqa: ARG002  # aiokafka's signature
        (self._open if self._open is not None else self.outside).append(value)

    async def send_and_wait(self, topic: str, value: bytes, key: bytes | None = None) -> None:  # noqa: ARG002  # aiokafka's signature
        self.outside.append(value)


async def test_the_impact_record_and_its_checkpoint_commit_in_one_transaction(
    pipeline_keys: FileKeyStore,
) -> None:
    """The indexer refuses a record still unsigned at the end of what is committed: a run's
    record must never be visible without its checkpoint."""
    producer = _TxnProducer()
    asked: list[str] = []

    class _Clients(KafkaClients):
        def transactional_producer(self, transactional_id: str, client_id: str, **_: Any) -> Any:  # noqa: ARG002  # the seam's signature
            asked.append(transactional_id)
            return producer

    clients = _Clients(KafkaSettings(bootstrap="fake:9092"))
    by = "jo.bloggs (terminal, not signed in)"
    chain = await record_impact(clients, pipeline_keys, Impact("1", "2"), by=by)
    assert producer.outside == []
    assert len(producer.committed) == 1
    records = [json.loads(v) for v in producer.committed[0]]
    assert [r["kind"] for r in records] == ["policy_impact", "checkpoint"]
    # Who ran it, as the command line's other audit records name them.
    assert records[0]["data"]["officer"] == by
    assert records[0]["data"]["nothing_compared"] is True
    # Under the prefix provisioning grants the worker's login, and the run's own.
    assert asked == [f"{WORKER_TRANSACTIONAL_ID}.{chain.split(':', 1)[1]}"]


@pytest.mark.parametrize("processes", [1, 2])
def test_event_records_decided_for_no_one_are_counted_by_why(
    impact_keys: FileKeyStore, changed_policy: Policy, processes: int
) -> None:
    """The table said '249 event(s) compared' of 263 read, and nothing of the other 14: each
    is counted by the worker's quarantine reason, or as decided for no one."""
    records, _ = _mix(impact_keys)
    tally = Tally()
    assert changed_policy.source is not None
    runs = redecide_both(POLICIES, changed_policy.source, records, keystore=impact_keys.path,
                         passphrase=None, envelope=ENVELOPE, processes=processes,
                         tally=tally, partitions=placed(records))  # fmt: skip
    skipped = tally.not_compared
    assert skipped == {
        "malformed": 2, "invalid-event": 2, "replay": 1, "wrong-topic": 1, "unknown-sender": 1,
        # Oldbury's COG routes nowhere under the bundle in force and is no party under the new.
        "no-candidate/unknown-sender": 1,
    }  # fmt: skip
    impact = compare(*runs, versions=("v1", "v2"))
    impact.read = sum(party_of_ingress(r.topic) is not None for r in records)
    impact.compared, impact.not_compared = tally.compared, tally.reasons()
    # Every event record read is either compared or counted here, and each compared one is
    # an event of the first line.
    assert impact.read == tally.compared + sum(skipped.values())
    assert tally.compared == impact.events
    assert impact.as_json()["events_not_compared"] == dict(skipped)
    assert impact.as_json()["events_compared"] == impact.events
    assert impact.not_compared_said() == (
        f"{impact.read} event record(s) read: {impact.events} compared; 8 decided for no one "
        "under either bundle, so not compared: invalid-event 2, malformed 2, "
        "no-candidate/unknown-sender 1, replay 1, unknown-sender 1, wrong-topic 1"
    )
