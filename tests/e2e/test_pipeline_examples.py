"""The shared example scenarios through the real pipeline: SDK → Kafka → worker → SDK.

Every event of ``../shared/examples/scenarios`` is published through the SDK (consents too,
by the party that recorded them); each recipient's subscriber must receive exactly the
redacted views the policy engine predicts — given the consents the worker has seen so far —
and nothing else, and the audit topic must hold one ``decided`` record per candidate.
This is the conformance run of the shared examples, unchanged: without ``../shared`` beside
the clone it skips. The project's own scenarios go through the same ``Harness`` in
``test_audit_examples.py`` and ``test_console_browser.py``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from pathlib import Path

import pytest

from broker.audit import AuditKind
from broker.devkafka import EmbeddedKafka
from broker.envelope import Opener
from broker.errors import WrongRecipient
from broker.keys import FileKeyStore
from broker.policy import load_bundle
from broker.sdk import WithdrawalNotice
from broker.topics import deliver
from tests.e2e.playback import Harness, all_scenarios, scenario_event_id
from tests.e2e.worker_proc import keystore_for, read_audit, verify_chains
from tests.kafka_helpers import read_to_end

pytestmark = pytest.mark.slow


@pytest.fixture
def keys(tmp_path: Path, shared_dir: Path) -> FileKeyStore:
    """Keys for every party of the shared example bundle."""
    return keystore_for(load_bundle(shared_dir / "examples" / "policies"), tmp_path / "keys")


async def test_shared_scenarios_flow_end_to_end_exactly_as_the_policy_predicts(
    isolated_kafka: EmbeddedKafka, shared_dir: Path, tmp_path: Path, keys: FileKeyStore
) -> None:
    h = Harness(isolated_kafka.bootstrap, shared_dir / "examples" / "policies", keys, tmp_path)
    scenarios = all_scenarios(shared_dir / "examples" / "scenarios")
    await h.start(scenarios[0].at)
    digest = hmac.new(keys.linkage_key(), b"accord/pseudonym/v1", hashlib.sha256)
    try:
        for scenario in scenarios:
            await h.play(scenario, digest.digest())
    finally:
        await h.finish()

    notices: dict[str, list[WithdrawalNotice]] = {}
    for recipient, party in h.policy.bundle.parties.items():
        if party.kind == "agency":
            continue
        views, got_notices = await h.received(recipient, expect=len(h.expected.get(recipient, {})))
        assert views == h.expected.get(recipient, {}), recipient
        if got_notices:
            notices[recipient] = got_notices

    # The withdrawal tells the hub that had received the child's records under consent.
    assert set(notices) == {"hub-tipton"}
    family = next(s for s in scenarios if "minimal, generalised" in s.name)
    assert [n.event_ids for n in notices["hub-tipton"]] == [(scenario_event_id(family),)]

    audit = await read_audit(isolated_kafka.bootstrap)
    decided = [r for r in audit if r.kind is AuditKind.DECIDED]
    per_candidate = Counter((r.event_id, r.party) for r in decided)
    assert len(per_candidate) == h.candidates
    assert set(per_candidate.values()) == {1}
    assert any(r.data["outcome"] == "not_shared" for r in decided)
    assert [r for r in audit if r.kind is AuditKind.QUARANTINED] == []
    verify_chains(audit, keys)

    # A hub's key cannot open another hub's records.
    raw = (await read_to_end(isolated_kafka.bootstrap, deliver("hub-tipton")))[0]
    with pytest.raises(WrongRecipient):
        Opener("hub-oldbury", keys).open_kafka(raw.value or b"", raw.headers)
