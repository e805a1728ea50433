"""`accord policy impact` scores a consent record the bundle in force filed as the new
bundle's decisions would check it (``consent_refusal``: its recorder's authority), never by
its words again as on arrival: a withdrawal naming a party the new bundle drops is still on
file and is no ``unknown-recipient`` there, so no sharing resumes; but one whose recorder's
authority no longer covers that party does stop counting, and impact says so."""

from __future__ import annotations

import shutil
import uuid
from datetime import date
from pathlib import Path

import pytest

from broker.kafka import Retained
from broker.keys import FileKeyStore
from broker.pipeline import Tally, compare, redecide_both
from broker.pipeline._impact import ConsentRow
from broker.pipeline._impact_redecide import COUNTS
from broker.synthetic import SyntheticFamilies
from broker.topics import CONSENT, SCHEMA_CONSENT
from tests.unit.pipeline.conftest import ENVELOPE, POLICIES
from tests.unit.pipeline.test_impact import _Records
from tests.unit.pipeline.test_impact_consent import _worker_switching, consent_keys

__all__ = ["consent_keys"]  # the module-scoped keystore fixture, shared

OUT = "outside-authority"


@pytest.fixture(scope="module")
def with_cog_new(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project bundle with one more hub, ``cog-new``: the bundle in force, which the
    project bundle (the new one) drops it from."""
    root = tmp_path_factory.mktemp("with-cog-new") / "policies"
    shutil.copytree(POLICIES, root, ignore=shutil.ignore_patterns("scenarios"))
    with (root / "parties.yaml").open("a") as f:
        f.write('  cog-new:\n    name: A new hub\n    kind: hub\n    localities: ["B99"]\n')
    return root


def _withdrew_naming_cog_new(keys: FileKeyStore, by: str, recipients: list[str]) -> list[Retained]:
    """The co-ordinating team recorded a family's consent for the hubs; ``by`` then recorded
    its withdrawal for ``recipients`` (naming ``cog-new``); a police incident follows."""
    fam = SyntheticFamilies(seed=42, today=date(2026, 11, 21))
    family = fam.faker.last_name()
    child = fam.subject("child", family_name=family, postcode=fam.postcode(("B68",)))
    r = _Records(keys)

    def consent(by: str, state: str, recipients: list[str], at: str) -> None:
        record = {"subject": {"nhs_number": child["nhs_number"]}, "state": state,
                  "purposes": ["*"], "recipients": recipients, "recorded_by": by,
                  "recorded_at": at}  # fmt: skip
        r.sealed(by, record, topic=CONSENT, schema=SCHEMA_CONSENT, event_id=str(uuid.uuid4()))

    consent("sandwell-coord", "given", ["kind:hub"], "2026-10-01T09:00:00Z")
    consent(by, "withdrawn", recipients, "2026-11-01T09:00:00Z")
    r.sealed("wmp", fam.event(subjects=[child], need_level=2))
    return r.out


def test_a_filed_withdrawal_naming_a_party_the_new_bundle_drops_still_counts(
    consent_keys: FileKeyStore, with_cog_new: Path
) -> None:
    """Not "would stop counting (unknown-recipient): sharing it stopped would resume": the
    worker never checks a filed record's words again (sandwell-coord may name anyone)."""
    records = _withdrew_naming_cog_new(consent_keys, "sandwell-coord", ["cog-new"])
    tally = Tally()
    runs = redecide_both(with_cog_new, POLICIES, records, keystore=consent_keys.path,
                         passphrase=None, envelope=ENVELOPE, processes=1,
                         tally=tally)  # fmt: skip
    assert tally.consents[("sandwell-coord", "withdrawn", (COUNTS, COUNTS))] == 1
    impact = compare(*runs, versions=("v1", "v2"), consents=tally.consents)
    assert impact.consents == []
    assert impact.as_json()["consent_records_changed"] == []
    assert impact.rows == []
    assert runs[1] == _worker_switching(consent_keys, with_cog_new, POLICIES, records)


def test_a_filed_withdrawal_outside_its_recorders_authority_under_the_new_bundle_stops(
    consent_keys: FileKeyStore, with_cog_new: Path
) -> None:
    """hv-sandwell may name hubs by kind, and ``cog-new`` only while it is a hub of the
    bundle: the new bundle's decisions drop the whole withdrawal (``outside-authority``) and
    the hubs are told again; impact warns of it, not counts it by its known words."""
    records = _withdrew_naming_cog_new(consent_keys, "hv-sandwell", ["kind:hub", "cog-new"])
    tally = Tally()
    runs = redecide_both(with_cog_new, POLICIES, records, keystore=consent_keys.path,
                         passphrase=None, envelope=ENVELOPE, processes=1,
                         tally=tally)  # fmt: skip
    assert tally.consents[("hv-sandwell", "withdrawn", (COUNTS, OUT))] == 1
    impact = compare(*runs, versions=("v1", "v2"), consents=tally.consents)
    assert impact.consents == [ConsentRow("stops", "hv-sandwell", "withdrawn", OUT, 1)]
    assert impact.consents[0].reopens
    assert [(r.change, r.recipient, r.reason) for r in impact.rows] == [
        ("starts", "cog-oldbury", "consent-withdrawn")
    ]
    assert runs[1] == _worker_switching(consent_keys, with_cog_new, POLICIES, records)
