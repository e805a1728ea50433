"""`accord policy impact` compares how the two bundles take the consent records on file: a
consent authority narrowed in the new bundle makes its records outside the new scope count
for nothing, a withdrawal as much as a grant, and sharing the family stopped starts again.
The decisions' lines show only that effect ("starts … consent-withdrawn"); these counts are
its cause, shown before them, a withdrawal or refusal that stops counting warned of. A
record the bundle in force refused on arrival was never filed: a wider new bundle does not
make it count (the worker never sees it again), so it changes no decision and is reported
as counting only if recorded again."""

from __future__ import annotations

import json
import shutil
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from broker.config import KafkaSettings, KemSuite
from broker.kafka import KafkaClients, Retained
from broker.keys import SPECIAL_PRINCIPALS, FileKeyStore
from broker.pipeline import Impact, Tally, compare, record_impact, redecide_both
from broker.pipeline._consent import consent_chain
from broker.pipeline._effects import Audit, MarkProcessed, Publish
from broker.pipeline._impact import ConsentRow, consent_changes
from broker.pipeline._impact_compare import AGAIN
from broker.pipeline._impact_redecide import COUNTS, ConsentTaken, Decided, Key
from broker.pipeline._ingress import ingress_chain
from broker.pipeline._processor import build_services
from broker.pipeline._services import Services
from broker.pipeline._stages import Verdict, Work, run_chain
from broker.pipeline._state import WorkerState
from broker.policy import Policy, load_bundle
from broker.synthetic import SyntheticFamilies
from broker.topics import CONSENT, SCHEMA_CONSENT
from tests.unit.pipeline.conftest import ENVELOPE, POLICIES
from tests.unit.pipeline.test_impact import _Records, _TxnProducer

OUT = "outside-authority"
Run = Callable[[list[str]], tuple[int, str, str]]


def test_records_one_bundle_counts_and_the_other_refuses_are_counted_by_recorder_and_state() -> (
    None
):
    taken: Counter[ConsentTaken] = Counter({
        ("hv-sandwell", "withdrawn", (COUNTS, OUT)): 1,  # stops counting: sharing resumes
        ("hv-sandwell", "given", (COUNTS, OUT)): 3,
        ("hv-sandwell", "given", (COUNTS, COUNTS)): 5,  # the same under both: no change
        ("swbh", "refused", ("not-a-consent-authority", COUNTS)): 2,  # never filed
        ("swbh", "given", ("party-inactive", OUT)): 4,  # counts under neither: no change
        ("sandwell-coord", "given", ("replay", "replay")): 1,
    })  # fmt: skip
    assert consent_changes(taken) == [
        ConsentRow("stops", "hv-sandwell", "withdrawn", OUT, 1),  # reopening first
        ConsentRow(AGAIN, "swbh", "refused", "not-a-consent-authority", 2),  # then marked !
        ConsentRow("stops", "hv-sandwell", "given", OUT, 3),
    ]
    [withdrawal, refusal, grant] = consent_changes(taken)
    assert (withdrawal.reopens, grant.reopens, refusal.reopens) == (True, False, False)
    assert withdrawal.said() == (
        "hv-sandwell withdrawn: 1 would stop counting (outside-authority): "
        "sharing it stopped would resume"
    )
    assert (withdrawal.unfiled_stop, grant.unfiled_stop, refusal.unfiled_stop) == (
        False, False, True
    )  # fmt: skip
    assert refusal.said() == (
        "swbh refused: 2 refused on arrival and never filed (not-a-consent-authority): "
        "would count only if recorded again: sharing continues until it is recorded again "
        "under a new id"
    )
    assert consent_changes({}) == []


# -- the records themselves, re-decided under a bundle with hv-sandwell narrowed ----------


@pytest.fixture(scope="module")
def consent_keys(tmp_path_factory: pytest.TempPathFactory, project_policy: Policy) -> FileKeyStore:
    store = FileKeyStore(tmp_path_factory.mktemp("impact-consent-keys"), create=True)
    for party in project_policy.bundle.parties:
        store.ensure_party(party, kem=KemSuite.X25519)
    for principal, purposes in SPECIAL_PRINCIPALS.items():
        store.ensure_party(principal, purposes=purposes, kem=KemSuite.X25519)
    store.set_linkage_key()
    return store


@pytest.fixture(scope="module")
def narrowed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project bundle with the health visitors' authority narrowed to early help."""
    root = tmp_path_factory.mktemp("narrowed") / "policies"
    shutil.copytree(POLICIES, root, ignore=shutil.ignore_patterns("scenarios"))
    path = root / "consent-authorities.yaml"
    old = 'hv-sandwell: {purposes: ["*"]'
    text = path.read_text()
    assert text.count(old) == 1
    path.write_text(text.replace(old, "hv-sandwell: {purposes: [early_help]"))
    return root


def _family_withdrew(keys: FileKeyStore) -> list[Retained]:
    """A family in Oldbury gave consent (the co-ordinating team recorded it), then withdrew
    it for everything (recorded by the health visitor, purposes ["*"]); a police incident
    about the child follows. A health visitor's grant for early help counts either way."""
    fam = SyntheticFamilies(seed=42, today=date(2026, 11, 21))
    family = fam.faker.last_name()
    postcode = fam.postcode(("B68",))
    child = fam.subject("child", family_name=family, postcode=postcode)
    parent = fam.subject("parent", family_name=family, postcode=postcode)
    other = fam.subject("child", family_name=fam.faker.last_name(), postcode=postcode)
    r = _Records(keys)

    def consent(by: str, state: str, purposes: list[str], nhs: str, at: str) -> None:
        record = {"subject": {"nhs_number": nhs}, "state": state, "purposes": purposes,
                  "recipients": ["kind:hub"], "recorded_by": by, "recorded_at": at}  # fmt: skip
        r.sealed(by, record, topic=CONSENT, schema=SCHEMA_CONSENT, event_id=str(uuid.uuid4()))

    consent("sandwell-coord", "given", ["early_help"], child["nhs_number"], "2026-10-01T09:00:00Z")
    consent("hv-sandwell", "withdrawn", ["*"], child["nhs_number"], "2026-11-01T09:00:00Z")
    consent("hv-sandwell", "given", ["early_help"], other["nhs_number"], "2026-11-01T09:00:00Z")
    r.sealed("wmp", fam.event(subjects=[child, parent], need_level=2))
    return r.out


@pytest.mark.parametrize("processes", [1, 2])
def test_a_withdrawal_outside_the_narrowed_authority_is_counted_as_stopping_to_count(
    consent_keys: FileKeyStore, narrowed: Path, processes: int
) -> None:
    """Counted once however many processes (each takes every consent record), and the
    decision it changes is the one the walkthrough saw."""
    records = _family_withdrew(consent_keys)
    tally = Tally()
    runs = redecide_both(POLICIES, narrowed, records, keystore=consent_keys.path,
                         passphrase=None, envelope=ENVELOPE, processes=processes,
                         tally=tally)  # fmt: skip
    assert tally.consents == {
        ("sandwell-coord", "given", (COUNTS, COUNTS)): 1,
        ("hv-sandwell", "withdrawn", (COUNTS, OUT)): 1,
        ("hv-sandwell", "given", (COUNTS, COUNTS)): 1,
    }
    impact = compare(*runs, versions=("v1", "v2"), consents=tally.consents)
    assert impact.consents == [ConsentRow("stops", "hv-sandwell", "withdrawn", OUT, 1)]
    assert [(r.change, r.agreement, r.recipient, r.reason) for r in impact.rows] == [
        ("starts", "sandwell-early-help", "cog-oldbury", "consent-withdrawn")
    ]
    assert impact.as_json()["consent_records_changed"] == [
        {"change": "stops", "recorded_by": "hv-sandwell", "state": "withdrawn",
         "reason": OUT, "records": 1, "reopens_sharing": True}
    ]  # fmt: skip


@pytest.mark.parametrize("processes", [1, 2])
def test_widening_an_authority_makes_no_decision_difference_for_a_withdrawal_never_filed(
    consent_keys: FileKeyStore, narrowed: Path, processes: int
) -> None:
    """The narrowed bundle in force refused the withdrawal on arrival, so the worker never
    filed it: the wider bundle put in force does not make it stop anything."""
    records = _family_withdrew(consent_keys)
    tally = Tally()
    runs = redecide_both(narrowed, POLICIES, records, keystore=consent_keys.path,
                         passphrase=None, envelope=ENVELOPE, processes=processes,
                         tally=tally)  # fmt: skip
    assert tally.consents[("hv-sandwell", "withdrawn", (OUT, COUNTS))] == 1
    impact = compare(*runs, versions=("v1", "v2"), consents=tally.consents)
    assert impact.consents == [ConsentRow(AGAIN, "hv-sandwell", "withdrawn", OUT, 1)]
    assert impact.rows == []  # not "stops … cog-oldbury consent-withdrawn"
    assert impact.unchanged == impact.decisions > 0


def _worker_switching(
    keys: FileKeyStore, in_force: Path, new: Path, records: list[Retained]
) -> dict[Key, Decided]:
    """The worker's own chains: every consent record taken as it arrived, under the bundle
    ``in_force``; then ``new`` put in force (the state kept) and the events decided."""
    state = WorkerState()
    clock = [datetime.now(UTC)]

    def services(path: Path) -> Services:
        return build_services(policy=load_bundle(path), keys=keys,
                              linkage_key=keys.linkage_key(), state=state,
                              clock=lambda: clock[0], envelope=ENVELOPE)  # fmt: skip

    before, after = services(in_force), services(new)
    decided: dict[Key, Decided] = {}
    for rec in records:
        clock[0] = at = datetime.fromtimestamp(rec.timestamp_ms / 1000, UTC)
        headers = [(k, v) for k, v in rec.headers if v is not None]
        work = Work(rec.topic, rec.partition, rec.offset, rec.value, headers, at, rec.key)
        if rec.topic == CONSENT:
            outcome = run_chain(consent_chain(before), work)
            for e in outcome.effects:
                if not isinstance(e, Audit | Publish | MarkProcessed):
                    state.change(e)
            continue
        route, open_, validate, link, decide, _ = ingress_chain(after)
        assert run_chain((route, open_, validate, link), work).verdict is Verdict.FORWARD
        for d in decide.decisions(work, check_keys=False):
            decided[rec.topic, str(d.event_id), d.recipient] = Decided.of(d)
    return decided


@pytest.mark.parametrize("widen", [False, True], ids=["narrow", "widen"])
def test_the_new_bundles_decisions_are_the_workers_after_it_is_put_in_force(
    consent_keys: FileKeyStore, narrowed: Path, widen: bool
) -> None:
    """Both ways round, each side's decisions are those the worker makes with the consent
    records filed under the bundle in force, then the events decided under that bundle
    (today) or the new one (after the switch)."""
    current, new = (narrowed, POLICIES) if widen else (POLICIES, narrowed)
    records = _family_withdrew(consent_keys)
    runs = redecide_both(current, new, records, keystore=consent_keys.path, passphrase=None,
                         envelope=ENVELOPE)  # fmt: skip
    assert runs[0] == _worker_switching(consent_keys, current, current, records)
    assert runs[1] == _worker_switching(consent_keys, current, new, records)
    assert runs[0] != runs[1] or widen  # narrowing voids the filed withdrawal: it differs


async def test_the_audit_record_carries_the_consent_counts_and_no_one_they_are_about(
    pipeline_keys: FileKeyStore,
) -> None:
    producer = _TxnProducer()

    class _Clients(KafkaClients):
        def transactional_producer(self, transactional_id: str, client_id: str, **_: Any) -> Any:  # noqa: ARG002  # the seam's signature
            return producer

    impact = Impact("1", "2", consents=[ConsentRow("stops", "hv-sandwell", "withdrawn", OUT, 1)])
    await record_impact(_Clients(KafkaSettings(bootstrap="fake:9092")), pipeline_keys, impact,
                        by="jo")  # fmt: skip
    [[record, _]] = [[json.loads(v) for v in txn] for txn in producer.committed]
    assert record["data"]["consent_records_changed"] == [
        {"change": "stops", "recorded_by": "hv-sandwell", "state": "withdrawn",
         "reason": OUT, "records": 1, "reopens_sharing": True}
    ]  # fmt: skip
    assert record["subject_keys"] == []


# -- the command's output ------------------------------------------------------------------


@pytest.fixture
def offline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, consent_keys: FileKeyStore
) -> list[Impact]:
    """``accord policy impact`` over ``_family_withdrew``'s records, with the keystore given
    and Kafka's reads and the audit record's write faked; the Impact recorded is kept."""
    import importlib
    import pkgutil

    import broker.cli
    import broker.cli._common
    import broker.kafka
    import broker.pipeline

    # Every CLI module first: one imported while kafka_as is patched (``from
    # broker.cli._common import kafka_as``) would keep the stand-in for the rest of the
    # process, and a later test in it would talk to no Kafka.
    for module in pkgutil.iter_modules(broker.cli.__path__):
        importlib.import_module(f"broker.cli.{module.name}")
    records = _family_withdrew(consent_keys)
    recorded: list[Impact] = []

    async def read_retained(_: object, topics: list[str], **__: object) -> list[Retained]:
        return [r for r in records if r.topic in topics]

    async def record(_: object, __: object, impact: Impact, *, by: str) -> str:
        recorded.append(impact)
        return "worker:impact-test"

    async def missing_topics(*_: object, **__: object) -> list[str]:
        return []  # every sender's topic provisioned

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ACCORD_ENVELOPE__KEM", "x25519")
    monkeypatch.delenv("ACCORD_POLICIES", raising=False)
    monkeypatch.setattr(broker.cli._common, "keystore", lambda *_: consent_keys)
    monkeypatch.setattr(broker.cli._common, "kafka_as", lambda *_: object())
    monkeypatch.setattr(broker.kafka, "read_retained", read_retained)
    monkeypatch.setattr(broker.kafka, "missing_topics", missing_topics)
    monkeypatch.setattr(broker.pipeline, "record_impact", record)
    return recorded


def _impact(narrowed: Path, *more: str) -> list[str]:
    return ["policy", "impact", "--policies", str(narrowed), "--current", str(POLICIES), *more]


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[[list[str]], tuple[int, str, str]]:
    """``accord`` in-process: (exit code, stdout, stderr)."""
    from broker.cli import main

    def run(argv: list[str]) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            main(argv)
        except SystemExit as exc:
            return int(exc.code or 0), *capsys.readouterr()
        return 0, *capsys.readouterr()

    return run


def test_the_table_shows_the_withdrawal_that_stops_counting_before_the_decisions(
    run_cli: Run, offline: list[Impact], narrowed: Path
) -> None:
    code, out, err = run_cli(_impact(narrowed))
    assert code == 0, err
    lines = out.splitlines()
    heading = lines.index("consent records treated differently:")
    assert lines[heading + 1] == (
        "! hv-sandwell withdrawn: 1 would stop counting (outside-authority): "
        "sharing it stopped would resume"
    )
    [starts] = [i for i, line in enumerate(lines) if line.split()[:1] == ["starts"]]
    assert heading < starts  # the cause before its effect
    assert lines[starts].split() == [
        "starts", "sandwell-early-help", "cog-oldbury", "consent-withdrawn", "1"
    ]  # fmt: skip
    [warning] = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warning == (
        "warning: 1 consent withdrawal(s) or refusal(s) on file would count for nothing under "
        "the new bundle (hv-sandwell withdrawn 1 (outside-authority)): sharing they stopped "
        "would resume"
    )
    # Counts, never whom they are about; and the audit record holds them too.
    [recorded] = offline
    assert recorded.consents == [ConsentRow("stops", "hv-sandwell", "withdrawn", OUT, 1)]


def test_the_table_marks_a_withdrawal_never_filed_that_a_wider_authority_would_accept(
    run_cli: Run, offline: list[Impact], narrowed: Path
) -> None:
    """Widening the authority does not make it count: marked ``!`` and warned of, so it is
    not read as the family's withdrawal now heeded."""
    code, out, err = run_cli(
        ["policy", "impact", "--policies", str(POLICIES), "--current", str(narrowed)]
    )  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    heading = lines.index("consent records treated differently:")
    assert lines[heading + 1] == (
        "! hv-sandwell withdrawn: 1 refused on arrival and never filed (outside-authority): "
        "would count only if recorded again: sharing continues until it is recorded again "
        "under a new id"
    )
    assert "warning: 1 consent withdrawal(s) or refusal(s) not on file" in err


def test_json_gives_them_under_a_key_of_their_own_and_warns_on_stderr(
    run_cli: Run, offline: list[Impact], narrowed: Path, consent_keys: FileKeyStore
) -> None:
    code, out, err = run_cli(_impact(narrowed, "--format", "json"))
    assert code == 0, err
    result = json.loads(out)
    assert result["consent_records_changed"] == [
        {"change": "stops", "recorded_by": "hv-sandwell", "state": "withdrawn",
         "reason": OUT, "records": 1, "reopens_sharing": True}
    ]  # fmt: skip
    keys = list(result)
    assert keys.index("consent_records_changed") < keys.index("changes")
    assert "warning: 1 consent withdrawal(s) or refusal(s) on file" in err
    # The other way round, the withdrawal was refused on arrival and never filed: widening
    # the authority does not make it count, so it changes no decision, and stderr says the
    # sharing goes on until it is recorded again (not that widening fixed it).
    code, out, err = run_cli(
        ["policy", "impact", "--policies", str(POLICIES), "--current", str(narrowed),
         "--format", "json"]
    )  # fmt: skip
    assert code == 0, err
    wider = json.loads(out)
    assert wider["consent_records_changed"] == [
        {"change": "counts_if_recorded_again", "recorded_by": "hv-sandwell",
         "state": "withdrawn", "reason": OUT, "records": 1, "reopens_sharing": False}
    ]  # fmt: skip
    assert wider["changes"] == []
    assert err.count("warning: ") == 1
    assert (
        "warning: 1 consent withdrawal(s) or refusal(s) not on file (hv-sandwell withdrawn 1 "
        f"({OUT})): sharing continues until recorded again under a new id"
    ) in err
    assert "would resume" not in err
    for rec in _family_withdrew(consent_keys):
        assert rec.key is None or rec.key.decode() not in out
