"""The referral loop through the real broker: ``accord worker`` on real Kafka, SDK at both ends.

The co-ordinating team (``sandwell-coord``) records the family's consent and refers a child
living in Tipton; the worker decides the referral like any other event: it goes to the COG
for the child's town and to no other hub, one ``decided`` record per candidate. The COG
opens it with its own key, a named practitioner's view acknowledged, and sends its outcome
back, naming the referral's event id; the co-ordinating team receives and opens that. The
audit index (SQLite and PostgreSQL) then gives the child's disclosure log, as ``accord audit
subject --nhs-number`` prints it and the console's child page shows it: the referral
decision, the outcome decision and both openings with the users' names and purposes. A
referral without consent is decided ``not_shared``/``consent-missing``, audited, delivered to
no one. A police incident about that child is an Operation Encompass notice to the child's
school; unread, ``accord audit report`` shows it late from its deadline on, and not before.
"""

from __future__ import annotations

import asyncio
import io
import json
import secrets
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

import pytest

import broker.cli._audit
from broker.audit import AuditKind, AuditRecord
from broker.cli import main
from broker.config import SchoolCalendar, load_settings
from broker.console import TotpBox, UserFile
from broker.devkafka import EmbeddedKafka
from broker.envelope import InMemoryReplayGuard, Opener
from broker.keys import FileKeyStore
from broker.policy import Policy, encompass_deadline, load_bundle
from broker.sdk import Delivery, Publisher, Subscriber
from broker.synthetic import SyntheticFamilies
from broker.topics import deliver
from tests.e2e.playback import PROJECT_POLICIES
from tests.e2e.worker_proc import WorkerProcess, read_all, read_audit
from tests.kafka_helpers import clients, kafka_env, provisioned, tries_within

pytestmark = pytest.mark.slow

COORD, COG = "sandwell-coord", "cog-tipton"  # the child lives in Tipton (DY4)
SCHOOL = "school-146201"
COG_USER, COORD_USER = "cog-tipton/a.khan", "sandwell-coord/j.patel"
OFFICER, PASSWORD = "ig-jo", "correct horse battery staple"


@pytest.fixture
def pg_url(postgres_server: str) -> Iterator[str]:
    from tests.postgres import fresh_database

    yield from fresh_database(postgres_server)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _referral(child: dict[str, Any], at: datetime) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()), "type": "coordination.referral", "sender": COORD,
        "occurred_at": _iso(at), "reference": f"SEH-REF-{uuid.uuid4().hex[:6].upper()}",
        "need_level": 3, "summary": "Contacts from police and health in a month; family agreed.",
        "categories": ["domestic_abuse"], "subjects": [child],
    }  # fmt: skip


async def _until(
    bootstrap: str, done: Callable[[list[AuditRecord]], bool], worker: WorkerProcess
) -> list[AuditRecord]:
    for _ in tries_within(480):
        audit = await read_audit(bootstrap)
        if done(audit):
            return audit
        assert worker.alive(), worker.tail()
        await asyncio.sleep(0.5)
    raise AssertionError(f"the worker did not get there:\n{worker.tail()}")


def _decided(audit: list[AuditRecord], event_id: str) -> dict[str, tuple[str, str | None]]:
    return {
        r.party or "": (r.data["outcome"], r.data["reason"])
        for r in audit
        if r.kind is AuditKind.DECIDED and r.event_id == event_id
    }


async def _receive_and_open(
    bootstrap: str, keys: FileKeyStore, party: str, home: Path, *, by: str
) -> list[Delivery]:
    """What ``party`` receives (until one delivery and a quiet poll), each opened by ``by``."""
    got: list[Delivery] = []
    memory = home / f"replay-{party}.sqlite3"
    async with Subscriber(party, keys, clients(bootstrap, party), f"{party}.e2e",
                          replay_memory=memory) as sub:  # fmt: skip
        deadline = asyncio.get_running_loop().time() + 60
        quiet = 0
        while asyncio.get_running_loop().time() < deadline and quiet < 2:
            records = await sub.poll(0.5)
            quiet = quiet + 1 if not records and got else 0
            for record in records:
                assert isinstance(record.message, Delivery)
                got.append(record.message)
                await record.opened(by=by, purpose=record.message.purpose)
        assert sub.unopenable == []
    return got


async def _delivered_ids(bootstrap: str, keys: FileKeyStore, party: str) -> list[str]:
    """Event ids on ``party``'s delivery topic, opened with its key (read as the admin)."""
    opener = Opener(party, keys, replay_guard=InMemoryReplayGuard())
    out = []
    for m in await read_all(bootstrap, deliver(party)):
        payload = opener.open_kafka(m.value, m.headers, topic=deliver(party)).payload
        out.append(Delivery.model_validate_json(payload).event_id)
    return out


async def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    def run() -> int:
        stdin = sys.stdin
        sys.stdin = io.StringIO(PASSWORD + "\n")
        try:
            main(argv)
        except SystemExit as exc:
            return int(exc.code or 0)
        finally:
            sys.stdin = stdin
        return 0

    code = await asyncio.to_thread(run)  # the CLI runs its own event loop
    out = capsys.readouterr()
    return code, out.out, out.err


def _frozen(at: datetime) -> type[datetime]:
    """``datetime`` whose ``now`` is ``at``: the report's clock, moved rather than waited for."""

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Frozen:
            return cls.fromtimestamp(at.timestamp(), tz)

    return Frozen


def _bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def _hubs(policy: Policy) -> list[str]:
    return [p for p, party in policy.bundle.parties.items() if party.kind == "hub"]


async def test_referral_reaches_the_cog_and_its_outcome_comes_back_all_in_the_disclosure_log(  # noqa: PLR0915  # one story, told in order
    *,
    isolated_kafka: EmbeddedKafka, tmp_path: Path, project_keys: FileKeyStore, pg_url: str,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    bootstrap, keys = isolated_kafka.bootstrap, project_keys
    policy = load_bundle(PROJECT_POLICIES)
    provisioned(bootstrap, policy)  # sandwell-coord and the COGs get their ingress topics
    fam = SyntheticFamilies(seed=1515)
    # Names grepped for below, so long enough not to turn up by chance: a Faker name such as
    # "Guy" is found, one run in a hundred or so, inside a checkpoint's base64 signature.
    family = "Qz" + secrets.token_hex(4).capitalize()
    child = fam.subject("child", family_name=family, postcode="DY4 7AA", age=8)
    child["given_name"] = "Xo" + secrets.token_hex(3)
    other = fam.subject("child", family_name=fam.faker.last_name(), postcode="DY4 8QT", age=6,
                        school_urn=SCHOOL.removeprefix("school-"))  # fmt: skip
    now = datetime.now(UTC)

    worker = WorkerProcess(tmp_path, keys, bootstrap, PROJECT_POLICIES)
    worker.start()
    try:
        await _until(bootstrap, lambda a: any(r.kind is AuditKind.POLICY_LOADED for r in a),
                     worker)  # fmt: skip
        # The family agrees to early help: the co-ordinating team records it.
        consent = {"subject": {"nhs_number": child["nhs_number"]}, "state": "given",
                   "purposes": ["early_help"], "recipients": ["kind:hub"], "recorded_by": COORD,
                   "recorded_at": _iso(now - timedelta(minutes=5))}  # fmt: skip
        referral = _referral(child, now - timedelta(minutes=1))
        async with Publisher(COORD, keys, clients(bootstrap, COORD)) as pub:
            consent_id = (await pub.publish_consent(consent)).event_id
            await _until(bootstrap, lambda a: any(
                r.kind is AuditKind.CONSENT_RECORDED for r in a), worker)  # fmt: skip
            await pub.publish(referral)
        rid = referral["event_id"]
        audit = await _until(bootstrap, lambda a: bool(_decided(a, rid)), worker)
        # One decision per candidate: the COG covering DY4; no other hub is even a candidate.
        assert _decided(audit, rid) == {COG: ("shared", None)}

        # The COG opens it with its own key; a named practitioner's view is acknowledged.
        [got] = await _receive_and_open(bootstrap, keys, COG, tmp_path, by=COG_USER)
        assert got.event_id == rid
        assert got.clauses == ("coord-refers-to-cog",)
        [person] = got.view["subjects"]
        assert person["nhs_number"] == child["nhs_number"]
        assert "address" not in person  # minimum fields: where to find them is the postcode
        assert got.view["reference"] == referral["reference"]

        # The COG's outcome goes back through the broker, naming the referral.
        outcome = {
            "event_id": str(uuid.uuid4()), "type": "coordination.referral_outcome",
            "sender": COG, "occurred_at": _iso(datetime.now(UTC)), "reference": rid,
            "outcome": "support_offered", "need_level": got.view["need_level"],
            "summary": "Family support worker allocated.",
            "subjects": [{k: person[k] for k in
                          ("role", "nhs_number", "given_name", "family_name", "dob")}],
        }  # fmt: skip
        async with Publisher(COG, keys, clients(bootstrap, COG)) as pub:
            await pub.publish(outcome)
        oid = outcome["event_id"]
        audit = await _until(bootstrap, lambda a: bool(_decided(a, oid)), worker)
        assert _decided(audit, oid) == {COORD: ("shared", None)}
        [back] = await _receive_and_open(bootstrap, keys, COORD, tmp_path, by=COORD_USER)
        assert (back.event_id, back.view["reference"], back.view["outcome"]) == (
            oid, rid, "support_offered")  # fmt: skip

        # Without the family's consent: decided, audited, delivered to no one.
        unconsented = _referral(other, datetime.now(UTC))
        async with Publisher(COORD, keys, clients(bootstrap, COORD)) as pub:
            await pub.publish(unconsented)
        uid = unconsented["event_id"]
        audit = await _until(bootstrap, lambda a: bool(_decided(a, uid)) and sum(
            r.kind is AuditKind.OPENED for r in a) >= 2, worker)  # fmt: skip
        assert _decided(audit, uid) == {COG: ("not_shared", "consent-missing")}

        # A police incident about that child: an Operation Encompass notice to the school,
        # which nobody there opens.
        incident = fam.event("police.domestic_incident", "wmp", subjects=[other],
                             occurred_at=datetime.now(UTC))  # fmt: skip
        async with Publisher("wmp", keys, clients(bootstrap, "wmp")) as pub:
            await pub.publish(incident)
        iid = incident["event_id"]
        audit = await _until(bootstrap, lambda a: SCHOOL in _decided(a, iid), worker)
        assert _decided(audit, iid)[SCHOOL] == ("shared", None)
        assert worker.alive()
    finally:
        worker.stop()

    assert [r for r in audit if r.kind is AuditKind.QUARANTINED] == []
    opened = {(r.event_id, r.party, r.data["by"], r.data["purpose"])
              for r in audit if r.kind is AuditKind.OPENED}  # fmt: skip
    assert opened == {(rid, COG, COG_USER, "early_help"), (oid, COORD, COORD_USER, "early_help")}
    # Exactly one record reached the COG, nothing reached any other hub.
    for hub in _hubs(policy):
        assert await _delivered_ids(bootstrap, keys, hub) == ([rid] if hub == COG else []), hub
    assert sorted(await _delivered_ids(bootstrap, keys, COORD)) == sorted([oid, iid])
    assert await _delivered_ids(bootstrap, keys, SCHOOL) == [iid]
    [notice] = [r for r in audit if r.kind is AuditKind.DECIDED and r.event_id == iid
                and r.party == SCHOOL]  # fmt: skip
    deadline = encompass_deadline(notice.at, SchoolCalendar())

    # Nothing personal or free-text of the referral in the worker's log (or, below, the index).
    personal = [child[k] for k in ("given_name", "family_name", "dob", "nhs_number")]
    personal += [referral["reference"], referral["summary"], outcome["summary"]]
    assert not [v for v in personal if v in worker.log.read_text()]

    # The governance side: index, then the child's disclosure log, on both backends.
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    for name, value in kafka_env(bootstrap).items():  # as the indexer, the console
        monkeypatch.setenv(name, value)
    settings = load_settings()
    console_keys = FileKeyStore(settings.keystore_path("console"), settings.keystore_passphrase())
    box = TotpBox.from_keystore(console_keys, "console", create=True)
    UserFile(settings.console_users_file, box=box).add(OFFICER, PASSWORD)
    for url in (f"sqlite:///{tmp_path / 'audit.db'}", pg_url):
        # The configured index, each in turn: an answer from any other is from a copy, and
        # says so on stderr.
        monkeypatch.setenv("ACCORD_AUDIT_DB", url)
        code, _, err = await _cli(["audit", "index", "--db", url], capsys)
        assert (code, err) == (0, ""), err
        if url.startswith("sqlite"):
            # The write-ahead log too: what was committed may not be in the main file yet.
            db = b"".join(_bytes(tmp_path / name) for name in ("audit.db", "audit.db-wal"))
            assert b"coord-refers-to-cog" in db  # the decisions are in there
            assert not [v for v in personal if v.encode() in db]
        code, out, err = await _cli(
            ["audit", "subject", "--nhs-number", child["nhs_number"], "--db", url, "--format",
             "json", "--reason", "subject_access_request", "--as", OFFICER, "--password-stdin"],
            capsys,
        )  # fmt: skip
        assert (code, err) == (0, ""), err
        entries = json.loads(out)
        rows = {(e["kind"], e["event_id"], e["event_type"], e["recipient"], e["outcome"],
                 e["purpose"], e["opened_by"]) for e in entries}  # fmt: skip
        assert rows == {
            ("decision", rid, "coordination.referral", COG, "shared", "early_help", None),
            ("opened", rid, "coordination.referral", COG, None, "early_help", COG_USER),
            ("decision", oid, "coordination.referral_outcome", COORD, "shared", "early_help",
             None),
            ("opened", oid, "coordination.referral_outcome", COORD, None, "early_help",
             COORD_USER),
            # Each share's delivery (sent, not only decided), and the family's consent.
            ("delivered", rid, "coordination.referral", COG, None, "early_help", None),
            ("delivered", oid, "coordination.referral_outcome", COORD, None, "early_help",
             None),
            ("consent", consent_id, None, "", None, None, None),
        }, entries  # fmt: skip
        assert len(entries) == 7
        referral_row = next(e for e in entries if e["kind"] == "decision" and e["event_id"] == rid)
        assert referral_row["clauses"] == ["coord-refers-to-cog"]
        assert referral_row["consent"] == "given"
        # Nothing personal in what the officer is shown: ids, names of users, field paths.
        for value in (child["given_name"], child["family_name"], child["dob"], "DY4 7AA"):
            assert value not in out

        # The unread notice: not late a second before its deadline, late a second after.
        for at, late in ((deadline - timedelta(seconds=1), []), (deadline + timedelta(seconds=1),
                         [(SCHOOL, iid, None, "open past deadline")])):  # fmt: skip
            monkeypatch.setattr(broker.cli._audit, "datetime", _frozen(at))
            code, out, err = await _cli(
                ["audit", "report", "--db", url, "--format", "json", "--reason", "oversight",
                 "--as", OFFICER, "--password-stdin"], capsys,
            )  # fmt: skip
            assert (code, err) == (0, ""), err
            got = json.loads(out)["operation_encompass"]["late"]
            assert [(n["school"], n["event_id"], n["acknowledged_at"], n["state"])
                    for n in got] == late  # fmt: skip
