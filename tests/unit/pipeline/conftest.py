"""A processor over the project's own West Midlands bundle, real keys, and no Kafka."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from broker.audit import ChainWriter
from broker.config import EnvelopeSettings, KemSuite
from broker.keys import SPECIAL_PRINCIPALS, FileKeyStore
from broker.pipeline._metrics import Metrics
from broker.pipeline._processor import Processor, build_processor
from broker.pipeline._state import WorkerState
from broker.policy import Policy, load_bundle

AT = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
ENVELOPE = EnvelopeSettings(kem=KemSuite.X25519)  # fast keys; the KEM choice is not under test
POLICIES = Path(__file__).resolve().parents[3] / "policies"


@pytest.fixture(scope="session")
def project_policy() -> Policy:
    return load_bundle(POLICIES)


@pytest.fixture(scope="session")
def pipeline_keys(tmp_path_factory: pytest.TempPathFactory, project_policy: Policy) -> FileKeyStore:
    store = FileKeyStore(tmp_path_factory.mktemp("keys"), create=True)
    for party in project_policy.bundle.parties:
        store.ensure_party(party, kem=KemSuite.X25519)
    for principal, purposes in SPECIAL_PRINCIPALS.items():
        store.ensure_party(principal, purposes=purposes, kem=KemSuite.X25519)
    return store


@pytest.fixture
def make_processor(project_policy: Policy, pipeline_keys: FileKeyStore) -> Callable[..., Processor]:
    def make(
        state: WorkerState | None = None, checkpoint_every: int = 1000, policy: Policy | None = None
    ) -> Processor:
        return build_processor(
            policy=policy or project_policy,
            keys=pipeline_keys,
            linkage_key=b"k" * 32,
            state=state or WorkerState(),
            chain=ChainWriter("worker:test", clock=lambda: AT),
            clock=lambda: AT,
            envelope=ENVELOPE,
            metrics=Metrics(CollectorRegistry()),
            checkpoint_every=checkpoint_every,
        )

    return make
