"""A withdrawal reaches every past recipient whose share rested on the consent withdrawn,
however the withdrawal names the child, and whoever the share was about (consent is the
children's)."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from broker.audit import AuditKind
from broker.keys import FileKeyStore
from broker.pipeline._processor import Processor
from broker.pipeline._state import share_dict, shares_from
from broker.policy import load_bundle
from broker.topics import CONSENT, SCHEMA_CONSENT, ingress
from tests.unit.pipeline.conftest import POLICIES
from tests.unit.pipeline.test_processor import CHILD_NHS, Run, incident, seal_as


def _consent(run: Run, keys: FileKeyStore, subject: dict[str, str], state: str, at: str,
             recipients: list[str]) -> None:  # fmt: skip
    record = {"subject": subject, "state": state, "purposes": ["*"], "recipients": recipients,
              "recorded_by": "sandwell-coord", "recorded_at": at}  # fmt: skip
    run.feed(CONSENT, *seal_as(keys, "sandwell-coord", record, topic=CONSENT,
                               schema=SCHEMA_CONSENT, event_id=str(uuid.uuid4())))  # fmt: skip


def _event(run: Run, keys: FileKeyStore) -> dict[str, Any]:
    event = incident()
    run.feed(ingress("wmp"), *seal_as(keys, "wmp", event, topic=ingress("wmp")))
    return event


def _outcome(run: Run, event: dict[str, Any], recipient: str) -> tuple[str, str | None]:
    [d] = [a for a in run.audit(AuditKind.DECIDED)
           if a.event_id == event["event_id"] and a.party == recipient]  # fmt: skip
    return d.data["outcome"], d.data.get("reason")


def _notices(run: Run) -> list[tuple[str | None, list[str]]]:
    return [(n.party, n.data["event_ids"]) for n in run.audit(AuditKind.CONSENT_WITHDRAWN_NOTICE)]


def _shared_on_consent(
    make_processor: Callable[..., Processor], keys: FileKeyStore
) -> tuple[Run, dict[str, Any]]:
    """The child's consent by NHS number, then an event shared with the hub on it."""
    run = Run(make_processor())
    _consent(run, keys, {"nhs_number": CHILD_NHS}, "given", "2026-11-01T09:00:00Z",
             ["kind:hub"])  # fmt: skip
    return run, _event(run, keys)


def test_a_withdrawal_naming_the_child_by_name_and_birth_date_recalls_a_share_made_by_nhs(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    run, first = _shared_on_consent(make_processor, pipeline_keys)
    assert _outcome(run, first, "cog-tipton")[0] == "shared"
    by_name = {"given_name": "Amy", "family_name": "Hollis", "dob": "2019-03-02"}
    _consent(run, pipeline_keys, by_name, "withdrawn", "2026-11-10T09:00:00Z", ["*"])
    assert _notices(run) == [("cog-tipton", [first["event_id"]])]
    second = _event(run, pipeline_keys)
    assert _outcome(run, second, "cog-tipton") == ("not_shared", "consent-withdrawn")


def test_the_childs_withdrawal_recalls_a_share_about_a_parent_that_rested_on_it(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore, tmp_path: Path
) -> None:
    """safe-haven-referrals (approved here) shares the parent under the child's consent; a
    parent's own withdrawal is not what it rested on, and recalls nothing."""
    bundle = tmp_path / "policies"
    shutil.copytree(POLICIES, bundle)
    agreement = bundle / "agreements" / "safe-haven-referrals.yaml"
    agreement.write_text(agreement.read_text().replace("status: suspended", "status: approved"))
    run = Run(make_processor(policy=load_bundle(bundle)))
    child = {"nhs_number": CHILD_NHS}
    _consent(run, pipeline_keys, child, "given", "2026-11-01T09:00:00Z", ["safe-haven"])
    first = _event(run, pipeline_keys)
    assert _outcome(run, first, "safe-haven")[0] == "shared"
    parent = {"nhs_number": incident()["subjects"][1]["nhs_number"]}
    _consent(run, pipeline_keys, parent, "withdrawn", "2026-11-05T09:00:00Z", ["*"])
    assert _notices(run) == []
    _consent(run, pipeline_keys, child, "withdrawn", "2026-11-10T09:00:00Z", ["*"])
    assert _notices(run) == [("safe-haven", [first["event_id"]])]


OTHER_NHS = "9434765919"  # another child's, valid


def test_a_withdrawal_for_another_child_of_the_same_name_and_birth_date_recalls_nothing(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """The share is noted under the name-and-birth-date key too; the withdrawal is filed
    there as well, but its NHS number is another child's (docs/policy-language.md §5: an
    event naming a different NHS number is never covered)."""
    run, first = _shared_on_consent(make_processor, pipeline_keys)
    other = {"nhs_number": OTHER_NHS, "given_name": "Amy", "family_name": "Hollis",
             "dob": "2019-03-02"}  # fmt: skip
    _consent(run, pipeline_keys, other, "withdrawn", "2026-11-10T09:00:00Z", ["*"])
    assert _notices(run) == []
    assert _outcome(run, _event(run, pipeline_keys), "cog-tipton")[0] == "shared"
    assert _outcome(run, first, "cog-tipton")[0] == "shared"


def test_a_withdrawal_by_name_and_birth_date_at_another_postcode_recalls_nothing(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    run, first = _shared_on_consent(make_processor, pipeline_keys)
    elsewhere = {"given_name": "Amy", "family_name": "Hollis", "dob": "2019-03-02",
                 "postcode": "WV1 1AA"}  # fmt: skip
    _consent(run, pipeline_keys, elsewhere, "withdrawn", "2026-11-10T09:00:00Z", ["*"])
    assert _notices(run) == []
    here = {**elsewhere, "postcode": "DY4 7AA"}
    _consent(run, pipeline_keys, here, "withdrawn", "2026-11-11T09:00:00Z", ["*"])
    assert _notices(run) == [("cog-tipton", [first["event_id"]])]


def test_a_share_noted_by_an_older_accord_reads_and_is_recalled_on_its_key_alone() -> None:
    old = json.dumps([{"recipient": "cog-tipton", "recipient_kind": "hub",
                       "purpose": "early_help", "event_id": "e1", "granted_at": None}])  # fmt: skip
    [share] = shares_from(old.encode())
    assert (share.subject, share.postcode) == (None, None)
    later = json.dumps([{**share_dict(share), "subject": "n:x", "a-later-field": 1}])
    assert shares_from(later.encode())[0].subject == "n:x"


def test_one_twins_withdrawal_recalls_nothing_of_the_other_twins_shares(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """The twins share the key an older Accord gave them ("twin", letters only): a share
    noted under it would be recalled by either twin's withdrawal, since a share keeps no
    name to tell them apart by. Twin 2's own withdrawal still recalls it."""
    run = Run(make_processor())
    twin = {"family_name": "Hollis", "dob": "2019-03-02", "postcode": "DY4 7AA"}
    _consent(run, pipeline_keys, {**twin, "given_name": "Twin 2"}, "given",
             "2026-11-01T09:00:00Z", ["kind:hub"])  # fmt: skip
    event = incident()
    child = {k: v for k, v in event["subjects"][0].items() if k != "nhs_number"}
    event["subjects"] = [{**child, **twin, "given_name": "Twin 2"}, event["subjects"][1]]
    run.feed(ingress("wmp"), *seal_as(pipeline_keys, "wmp", event, topic=ingress("wmp")))
    assert _outcome(run, event, "cog-tipton")[0] == "shared"
    _consent(run, pipeline_keys, {**twin, "given_name": "Twin 1"}, "withdrawn",
             "2026-11-10T09:00:00Z", ["*"])  # fmt: skip
    assert _notices(run) == []
    _consent(run, pipeline_keys, {**twin, "given_name": "Twin 2"}, "withdrawn",
             "2026-11-11T09:00:00Z", ["*"])  # fmt: skip
    assert _notices(run) == [("cog-tipton", [event["event_id"]])]
