"""``school:of-child`` through the worker: what a school is sent, and what the audit log says it
was sent, name the same people (never a sibling at another school)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from broker._canonical import canonical_json
from broker.audit import AuditKind
from broker.envelope import Opener
from broker.events import parse_event
from broker.keys import FileKeyStore
from broker.pipeline._processor import Processor
from broker.policy import load_bundle
from broker.topics import deliver, ingress
from tests.unit.pipeline.conftest import AT, POLICIES
from tests.unit.pipeline.test_processor import Run, incident, seal_as


def test_a_sibling_at_another_school_is_neither_sent_to_nor_audited_for_the_childs_school(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore, tmp_path: Path
) -> None:
    bundle = tmp_path / "policies"
    shutil.copytree(POLICIES, bundle, ignore=shutil.ignore_patterns("scenarios"))
    encompass = bundle / "agreements" / "operation-encompass.yaml"
    text = encompass.read_text()
    assert "subjects: [child]\n" in text
    encompass.write_text(text.replace("subjects: [child]\n", "subjects: [child, sibling]\n"))
    run = Run(make_processor(policy=load_bundle(bundle)))
    event = incident()
    event["subjects"].insert(
        1,
        {"role": "sibling", "nhs_number": "9994410008", "given_name": "Jack",
         "family_name": "Hollis", "dob": "2013-09-02", "address": "12 Canal Street, Tipton",
         "postcode": "DY4 7AA", "school_urn": "146202"},
    )  # fmt: skip
    run.feed(ingress("wmp"), *seal_as(pipeline_keys, "wmp", event, topic=ingress("wmp")))

    linker = run.processor.services.linker
    child_key, sibling_key, _parent = (
        linker.subject_key(s) for s in parse_event(canonical_json(event), now=AT).subjects
    )
    decided = {r.party: r for r in run.audit(AuditKind.DECIDED)}
    assert "school-146202" not in decided  # routing is by the children's schools
    school = decided["school-146201"]
    assert school.data["outcome"] == "shared"
    assert school.data["subject_roles"] == {"child": 1}
    assert tuple(school.subject_keys) == (child_key,)
    [delivered] = [r for r in run.audit(AuditKind.DELIVERED) if r.party == "school-146201"]
    assert tuple(delivered.subject_keys) == (child_key,)
    assert sibling_key not in {k for r in run.audit() if r.party == "school-146201"
                               for k in r.subject_keys}  # fmt: skip
    [record] = run.on(deliver("school-146201"))
    opened = Opener("school-146201", pipeline_keys).open_kafka(record.value, record.headers)
    view = json.loads(opened.payload)["view"]
    assert [s["given_name"] for s in view["subjects"]] == ["Amy"]
